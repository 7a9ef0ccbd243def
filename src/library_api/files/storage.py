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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncBufferedIOBase, AsyncBufferedReader

from .pipeline import Batch, Pipeline, SerialStage

logger = logging.getLogger("library_api")

# Hashing and disk writes happen in worker threads batch by batch: large enough that the
# thread hop is cheap per byte, small enough that memory stays flat.
BATCH_BYTES = 1 << 20
# Batches handed over but not yet stored: enough to ride out a slow write. A batch closes
# once it holds 1 MiB, so with 1 MiB messages this is 4-8 MiB per upload.
PIPELINE_DEPTH = 4
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


class Writer(Protocol):
    size: int

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of every byte written so far."""

    async def write(self, data: bytes) -> None:
        """Add bytes at the end; they are hashed and stored in batches."""

    async def commit(self, *, suffix: str = "") -> str:
        """Store the file under a new generated key and return the key."""

    async def abort(self) -> None:
        """Throw away everything written; safe to call at any point, even twice."""


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


class BatchingWriter:
    """Collects small chunks into batches stored in order while the next ones arrive."""

    def __init__(self) -> None:
        self.size = 0
        self._hash = hashlib.sha256()
        # The chunks as received, so the event loop never copies them.
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._pipeline = Pipeline(PIPELINE_DEPTH)
        self._hashing = SerialStage(self._hash_batch)
        self._finished = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("write after commit or abort")
        self._pieces.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= BATCH_BYTES:
            await self._send()

    async def _send(self) -> None:
        await self._pipeline.admit()
        batch, self._pieces, self._buffered = self._pieces, [], 0
        self._pipeline.add(self._start(batch))

    async def _drain(self) -> None:
        if self._pieces:
            await self._send()
        await self._pipeline.finish()

    async def abort(self) -> None:
        self._finished = True
        # Runs to the end even when the request is cancelled half-way: that is when it matters.
        await asyncio.shield(self._abort())

    async def _abort(self) -> None:
        # A batch in flight cannot be stopped half-way: let it finish, whatever its fate.
        await self._pipeline.settle()
        await self._discard()

    async def _hash_batch(self, batch: Batch) -> None:
        await asyncio.to_thread(self._hash_all, batch)

    def _hash_all(self, batch: Batch) -> None:
        for piece in batch:
            self._hash.update(piece)

    def _start(self, batch: Batch) -> list[asyncio.Future[Any]]:
        raise NotImplementedError

    async def _discard(self) -> None:
        raise NotImplementedError


class LocalWriter(BatchingWriter):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root
        self._temp = root / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        self._file: AsyncBufferedIOBase | None = None
        self._writing = SerialStage(self._store)

    async def open(self) -> None:
        self._file = await aiofiles.open(self._temp, "xb")

    def _start(self, batch: Batch) -> list[asyncio.Future[Any]]:
        # Two stages, so the hash and the write of a batch run side by side (both release
        # the GIL).
        return [self._hashing.submit(batch), self._writing.submit(batch)]

    async def _store(self, batch: Batch) -> None:
        assert self._file is not None
        # One worker-thread call per batch; `writelines` passes each slice to write(2).
        views = [memoryview(piece) for piece in batch]
        await self._file.writelines(
            [v[i : i + WRITE_BYTES] for v in views for i in range(0, len(v), WRITE_BYTES)]
        )

    async def commit(self, *, suffix: str = "") -> str:
        await self._drain()
        self._finished = True
        assert self._file is not None
        await self._file.flush()
        if SYNC_ON_COMMIT:
            await asyncio.to_thread(os.fsync, self._file.fileno())
        await self._file.close()
        key = f"{uuid.uuid4().hex}{suffix}"
        await aiofiles.os.replace(self._temp, self._root / key)
        return key

    async def _discard(self) -> None:
        await discard_temporary(self._temp, self._file)


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
        writer = LocalWriter(self.root)
        await writer.open()
        return writer

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
