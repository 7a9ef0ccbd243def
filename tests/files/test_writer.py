"""The storage writer's edge cases that HTTP cannot time: a batch in a worker thread while
the request is cancelled or fails, and what the thread pool and the event loop are left with."""

import asyncio
import gc
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from library_api.files.gridfs_backend import GRIDFS_CHUNK_BYTES, GridFSWriter
from library_api.files.storage import BATCH_BYTES, LocalStorage, LocalWriter

BATCH = b"x" * BATCH_BYTES


async def local_writer(root: Path) -> LocalWriter:
    writer = await LocalStorage(root).open_writer()
    assert isinstance(writer, LocalWriter)
    return writer


def patch_store(
    monkeypatch: pytest.MonkeyPatch, work: Callable[[LocalWriter, list[bytes]], None]
) -> None:
    original = LocalWriter._hash_and_write

    def store(self: LocalWriter, batch: list[bytes]) -> None:
        work(self, batch)
        original(self, batch)

    monkeypatch.setattr(LocalWriter, "_hash_and_write", store)


def test_an_abort_during_a_batch_waits_for_its_thread_then_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate, events = threading.Event(), threading.Event(), []

    def slow(writer: LocalWriter, batch: list[bytes]) -> None:
        entered.set()
        gate.wait(5)
        events.append("batch stored")

    patch_store(monkeypatch, slow)

    async def main() -> None:
        writer = await local_writer(tmp_path)
        await writer.write(BATCH)  # stored while the next batch arrives
        request = asyncio.ensure_future(writer.write(BATCH))
        await asyncio.to_thread(entered.wait, 5)
        await asyncio.sleep(0.02)
        assert not request.done(), "a second batch was handed on while the first was stored"
        request.cancel()  # the client went away mid-batch
        with pytest.raises(asyncio.CancelledError):
            await request
        aborting = asyncio.ensure_future(writer.abort())
        await asyncio.sleep(0.05)
        assert not aborting.done(), "the file was thrown away under a thread writing to it"
        assert len(list(tmp_path.iterdir())) == 1
        gate.set()
        await asyncio.wait_for(aborting, 5)
        events.append("aborted")
        await writer.abort()  # twice is fine
        with pytest.raises(RuntimeError):
            await writer.write(b"more")

    asyncio.run(main())
    assert events == ["batch stored", "aborted"]
    assert list(tmp_path.iterdir()) == []


def test_an_abort_that_is_itself_cancelled_still_runs_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    patch_store(monkeypatch, lambda writer, batch: gate.wait(5))

    async def main() -> None:
        writer = await local_writer(tmp_path)
        await writer.write(BATCH)
        request = asyncio.ensure_future(writer.write(BATCH))
        await asyncio.sleep(0.02)
        request.cancel()
        aborting = asyncio.ensure_future(writer.abort())
        await asyncio.sleep(0.02)
        aborting.cancel()
        gate.set()
        await asyncio.gather(request, aborting, return_exceptions=True)
        for _ in range(100):  # the shielded discard finishes on its own
            if not list(tmp_path.iterdir()):
                break
            await asyncio.sleep(0.02)

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []


def test_a_failed_batch_stops_the_writer_and_abort_removes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored: list[int] = []

    def second_fails(writer: LocalWriter, batch: list[bytes]) -> None:
        if stored:
            raise OSError(28, "No space left on device")
        stored.append(len(batch))

    patch_store(monkeypatch, second_fails)

    async def main() -> None:
        writer = await local_writer(tmp_path)
        await writer.write(BATCH)
        await writer.write(BATCH)  # fails in its thread while the next batch arrives
        with pytest.raises(OSError, match="No space"):
            await writer.write(BATCH)
        # Nothing goes after a gap: neither more bytes nor a commit.
        with pytest.raises(RuntimeError):
            await writer.write(BATCH)
        with pytest.raises(RuntimeError):
            await writer.commit(suffix=".pdf")
        await writer.abort()

    asyncio.run(main())
    assert stored == [1]
    assert list(tmp_path.iterdir()) == []


def test_a_batch_that_fails_last_fails_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(writer: LocalWriter, batch: list[bytes]) -> None:
        raise OSError(5, "Input/output error")

    patch_store(monkeypatch, fails)

    async def main() -> None:
        writer = await local_writer(tmp_path)
        await writer.write(BATCH)
        with pytest.raises(OSError, match="Input/output"):
            await writer.commit(suffix=".pdf")
        await writer.abort()

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []


def test_an_abort_retrieves_the_error_of_a_batch_nobody_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The request failed for another reason (a size limit, say) while a batch was failing.
    patch_store(monkeypatch, lambda writer, batch: 1 / 0)
    unretrieved: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: unretrieved.append(context))
        writer = await local_writer(tmp_path)
        await writer.write(BATCH)
        await asyncio.sleep(0.05)
        await writer.abort()

    asyncio.run(main())
    gc.collect()
    assert unretrieved == []
    assert list(tmp_path.iterdir()) == []


def test_a_committed_file_holds_every_byte_in_order(tmp_path: Path) -> None:
    pieces = [bytes([n]) * (300_000 + n) for n in range(12)]

    async def main() -> tuple[str, str, int]:
        writer = await local_writer(tmp_path)
        for piece in pieces:
            await writer.write(piece)
        key = await writer.commit(suffix=".pdf")
        return key, writer.sha256, writer.size

    key, sha, size = asyncio.run(main())
    content = b"".join(pieces)
    assert [p.name for p in tmp_path.iterdir()] == [key]
    assert (tmp_path / key).read_bytes() == content
    assert size == len(content)
    assert sha == hashlib.sha256(content).hexdigest()


def test_a_slow_batch_lets_other_pool_work_through_between_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One pool thread, as when every thread is taken: other work waits for the batch in hand,
    # never for the whole upload.
    patch_store(monkeypatch, lambda writer, batch: time.sleep(0.05))

    async def main() -> float:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        writer = await local_writer(tmp_path)

        async def upload() -> None:
            for _ in range(12):
                await writer.write(BATCH)
            await writer.abort()

        uploading = asyncio.ensure_future(upload())
        await asyncio.sleep(0.08)
        started = time.perf_counter()
        await asyncio.to_thread(lambda: None)
        waited = time.perf_counter() - started
        await uploading
        return waited

    assert asyncio.run(main()) < 0.3  # one batch is 0.05 s; the whole upload 0.6 s


class FakeCollection:
    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        self.docs.extend(docs)

    async def insert_one(self, doc: dict[str, Any]) -> None:
        self.docs.append(doc)

    async def delete_many(self, query: dict[str, Any]) -> None:
        self.docs = [d for d in self.docs if d.get("files_id") != query["files_id"]]

    async def delete_one(self, query: dict[str, Any]) -> None:
        self.docs = [d for d in self.docs if d["_id"] != query["_id"]]


def test_gridfs_batches_are_cut_into_chunks_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut_on: list[bool] = []
    original = GridFSWriter._hash_and_cut

    def recording(self: GridFSWriter, batch: list[bytes]) -> list[dict[str, Any]]:
        cut_on.append(threading.current_thread() is threading.main_thread())
        return original(self, batch)

    monkeypatch.setattr(GridFSWriter, "_hash_and_cut", recording)
    files, chunks = FakeCollection(), FakeCollection()
    content = bytes(range(256)) * (3 * BATCH_BYTES // 256) + b"tail"

    async def main() -> str:
        writer = GridFSWriter(files, chunks)
        for start in range(0, len(content), 70_001):
            await writer.write(content[start : start + 70_001])
        return await writer.commit()

    key = asyncio.run(main())
    assert cut_on and not any(cut_on), "a batch was joined or sliced on the event loop"
    assert [c["n"] for c in chunks.docs] == list(range(len(chunks.docs)))
    assert all(len(c["data"]) == GRIDFS_CHUNK_BYTES for c in chunks.docs[:-1])
    assert b"".join(c["data"] for c in chunks.docs) == content
    assert files.docs[0]["length"] == len(content) and str(files.docs[0]["_id"]) == key


def test_an_aborted_gridfs_upload_takes_its_chunks_out_again() -> None:
    files, chunks = FakeCollection(), FakeCollection()

    async def main() -> None:
        writer = GridFSWriter(files, chunks)
        await writer.write(BATCH)
        await writer.write(BATCH)
        assert chunks.docs
        await writer.abort()

    asyncio.run(main())
    assert (files.docs, chunks.docs) == ([], [])
