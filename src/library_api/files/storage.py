"""Where covers and documents live: a folder (`local`, here) or GridFS (`gridfs_backend.py`).

Both backends take a file as a stream of chunks through a `Writer` (nothing is visible under
its key before `commit`, and `abort` leaves nothing behind) and hand it back as a stream of
~1 MiB chunks from `open_reader`, so memory use never depends on a file's size.
"""

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader

logger = logging.getLogger("library_api")

# Hashing and storing happen in a worker thread batch by batch: large enough that the thread
# hop is cheap per byte, small enough that memory stays flat.
BATCH_BYTES = 1 << 20
# Each write(2) stays this small: larger writes cost more CPU per byte (bench/README.md).
WRITE_BYTES = 256 * 1024
TEMP_PREFIX = ".tmp-"
# Temporary files this old belong to an instance that died mid-upload.
STALE_TEMP_SECONDS = 24 * 3600
# Like most web stacks, a committed upload is left to the kernel's write-back (about 30 s):
# an fsync per commit costs throughput (bench/README.md) that the atomic rename and the sha256
# kept in the database (which tells a file cut short by a power cut) make unnecessary.
SYNC_ON_COMMIT = False


class FileMissingError(LookupError):
    """The key names nothing in storage."""


class Writer(ABC):
    """A new file, written in order; a backend says how a batch is stored and committed.

    The chunks are kept as received (the event loop copies nothing) until they make a batch
    of BATCH_BYTES; `_store` then hashes and stores it with one worker-thread call while the
    next batch is received. Never more than one batch is being stored: no ordering to keep
    between threads, memory bounded by two batches, and no pool thread held for longer than
    a batch, so other thread-pool work gets its turn between batches. A failed batch fails
    the `write` that completes the next batch, or the `commit`. A batch being stored is not
    cancelled with the request (its thread could not be stopped anyway): `abort` waits for
    it before it throws the file away.
    """

    def __init__(self) -> None:
        self.size = 0
        self._hash = hashlib.sha256()
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._storing: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of every byte written so far (complete once committed)."""
        return self._hash.hexdigest()

    async def write(self, data: bytes) -> None:
        """Add bytes at the end; they are hashed and stored a batch at a time."""
        if self._closed:
            raise RuntimeError("write after commit, abort or a failed write")
        self._pieces.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= BATCH_BYTES:
            await self._flush()

    async def commit(self, *, suffix: str = "") -> str:
        """Store the file under a new generated key and return the key."""
        if self._closed:
            raise RuntimeError("commit after commit, abort or a failed write")
        await self._flush()
        await self._stored()
        self._closed = True
        return await self._complete(suffix)

    async def abort(self) -> None:
        """Throw away everything written; safe to call at any point, even twice."""
        self._closed = True
        # Runs to the end even when the request is cancelled half-way: that is when it matters.
        await asyncio.shield(self._abort())

    async def _flush(self) -> None:
        """Hands the pieces on as a batch once the batch before them is stored."""
        if not self._pieces:
            return
        await self._stored()
        batch, self._pieces, self._buffered = self._pieces, [], 0
        self._storing = asyncio.ensure_future(self._store(batch))

    async def _stored(self) -> None:
        if self._storing is None:
            return
        try:
            await asyncio.shield(self._storing)
        except BaseException:
            # Failed, or the request was cancelled: nothing more goes after a gap.
            self._closed = True
            raise
        self._storing = None

    async def _abort(self) -> None:
        if self._storing is not None:
            # `wait` neither cancels the batch nor raises its error: the caller has that.
            await asyncio.wait([self._storing])
            if not self._storing.cancelled():
                self._storing.exception()
        await self._discard()

    def _hash_batch(self, batch: list[bytes]) -> None:
        for piece in batch:
            self._hash.update(piece)

    @abstractmethod
    async def _store(self, batch: list[bytes]) -> None:
        """Hash `batch` (`_hash_batch`) and store it after the batches before it."""

    @abstractmethod
    async def _complete(self, suffix: str) -> str:
        """Make the stored batches a file under a new key; every batch is stored."""

    @abstractmethod
    async def _discard(self) -> None:
        """Remove whatever was stored; no batch is being stored any more."""


class Storage(Protocol):
    async def open_writer(self) -> Writer:
        """A writer for a new file, stored nowhere visible until it is committed."""

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive; None: to the end) of a stored file, in chunks.

        The file is opened before this returns (FileMissingError if it is gone), so a file
        replaced or deleted while the chunks are being read is still read to the end where
        the backend allows it.
        """

    async def delete(self, key: str) -> None:
        """Remove a stored file; a key that is already gone is fine."""

    async def remove_abandoned(self) -> None:
        """Remove what uploads cut short by a crash left behind, once it is a day old."""


class LocalWriter(Writer):
    """A temporary file in the folder, renamed to its key on commit."""

    def __init__(self, root: Path, temp: Path, file: BinaryIO) -> None:
        super().__init__()
        self._root, self._temp, self._file = root, temp, file

    @classmethod
    async def create(cls, root: Path) -> "LocalWriter":
        temp = root / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        return cls(root, temp, await asyncio.to_thread(_create, temp))

    async def _store(self, batch: list[bytes]) -> None:
        await asyncio.to_thread(self._hash_and_write, batch)

    def _hash_and_write(self, batch: list[bytes]) -> None:
        self._hash_batch(batch)
        for piece in batch:
            view = memoryview(piece)
            for start in range(0, len(view), WRITE_BYTES):
                self._file.write(view[start : start + WRITE_BYTES])

    async def _complete(self, suffix: str) -> str:
        await asyncio.to_thread(self._close)
        key = f"{uuid.uuid4().hex}{suffix}"
        await aiofiles.os.replace(self._temp, self._root / key)
        return key

    def _close(self) -> None:
        self._file.flush()
        if SYNC_ON_COMMIT:
            os.fsync(self._file.fileno())
        self._file.close()

    async def _discard(self) -> None:
        await asyncio.to_thread(_close_and_remove, self._file, self._temp)


def _create(path: Path) -> BinaryIO:
    return path.open("xb")


def _close_and_remove(file: BinaryIO, path: Path) -> None:
    # A close that fails (its flush hit a full disk, say) still closes the file.
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        # Keys are generated by this class, but a key read back from the database must
        # still never reach outside the folder.
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise FileMissingError(key)
        return self.root / key

    async def open_writer(self) -> Writer:
        return await LocalWriter.create(self.root)

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            file = await aiofiles.open(self._path(key), "rb")
        except FileNotFoundError:
            raise FileMissingError(key) from None
        return _local_chunks(file, start, end)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, FileMissingError):
            await aiofiles.os.remove(self._path(key))

    async def remove_abandoned(self) -> None:
        await asyncio.to_thread(remove_stale_temporaries, self.root)


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of uploads and imports a crash cut short, once they are a day old.

    Younger ones may be uploads in progress, here or in another instance.
    """
    cutoff = time.time() - STALE_TEMP_SECONDS
    for entry in folder.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
                logger.info("removed an abandoned upload, %s", entry.name)


async def discard_temporary(path: Path, file: AsyncBufferedIOBase | None) -> None:
    """Close and remove a temporary file, whatever state a failure left it in."""
    if file is not None:
        # A close that fails (its flush hit a full disk, say) still closes the file.
        with contextlib.suppress(OSError):
            await file.close()
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)


async def _local_chunks(
    file: AsyncBufferedReader, start: int, end: int | None
) -> AsyncIterator[bytes]:
    try:
        if start:
            await file.seek(start)
        position = start
        while end is None or position < end:
            count = BATCH_BYTES if end is None else min(BATCH_BYTES, end - position)
            data = await file.read(count)
            if not data:
                break
            position += len(data)
            yield data
    finally:
        await file.close()
