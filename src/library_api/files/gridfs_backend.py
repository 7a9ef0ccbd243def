"""The GridFS backend (`STORAGE_BACKEND=gridfs`): files as chunks in the service's database.

Several API instances behind a load balancer then share every cover and document.

Every database operation is bounded by MONGODB_TIMEOUT_SECONDS (db.py). The ones that move
or scan chunks (a ~1 MiB batch written or read, a file's chunks deleted, the start-up sweep)
take longer on a slow or busy database (seconds each on the embedded one), so each of them,
one by one, gets `long_operation()`'s bound instead (the start-up sweep SCAN_SECONDS): a
100 MiB upload or download is never cut for its total length, and a frozen database still
fails it. Looking a file up and writing its files entry keep the short bound, so they
answer 503 quickly.
"""

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator
from typing import Any

from bson import Int64, ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.errors import PyMongoError

from .. import clock
from ..db import SCAN_SECONDS, long_operation
from .storage import BATCH_BYTES, STALE_TEMP_SECONDS, FileMissingError, Writer

logger = logging.getLogger("library_api")

GRIDFS_BUCKET = "files"
# GridFS's default chunk size: well under the 16 MB document limit.
GRIDFS_CHUNK_BYTES = 255 * 1024
# Abandoned GridFS uploads removed per delete at start-up.
SWEEP_BATCH = 1000


class GridFSWriter(Writer):
    """The GridFS layout (spec: fixed-size chunks `{files_id, n, data}`, then the files entry).

    Written here rather than through pymongo's AsyncGridIn, which keeps up to 48 MB of chunks
    in memory before inserting them; these go out one batch (about 1 MiB) at a time. A batch
    is hashed and cut into chunks in a worker thread, so the event loop copies no byte of it.
    """

    def __init__(self, files: Any, chunks: Any) -> None:
        super().__init__()
        self._files, self._chunks = files, chunks
        self._id = ObjectId()
        self._count = 0
        # The end of the last batch, short of a whole chunk: it opens the next one.
        self._carry = b""

    def _chunk(self, data: bytes) -> dict[str, Any]:
        self._count += 1
        return {"files_id": self._id, "n": self._count - 1, "data": data}

    async def _store(self, batch: list[bytes]) -> None:
        docs = await asyncio.to_thread(self._hash_and_cut, batch)
        if docs:
            await self._insert(docs)

    def _hash_and_cut(self, batch: list[bytes]) -> list[dict[str, Any]]:
        self._hash_batch(batch)
        data = b"".join([self._carry, *batch])
        whole = len(data) - len(data) % GRIDFS_CHUNK_BYTES
        self._carry = data[whole:]
        return [
            self._chunk(data[i : i + GRIDFS_CHUNK_BYTES])
            for i in range(0, whole, GRIDFS_CHUNK_BYTES)
        ]

    async def _insert(self, docs: list[dict[str, Any]]) -> None:
        with long_operation():
            await self._chunks.insert_many(docs)

    async def _complete(self, suffix: str) -> str:
        if self._carry:
            await self._insert([self._chunk(self._carry)])
        await self._files.insert_one(
            {
                "_id": self._id,
                "length": Int64(self.size),
                "chunkSize": GRIDFS_CHUNK_BYTES,
                "uploadDate": clock.now(),
                "filename": str(self._id),
            }
        )
        return str(self._id)

    async def _discard(self) -> None:
        # Chunks already sent are in the database: take them out again.
        with long_operation():
            await self._chunks.delete_many({"files_id": self._id})
        await self._files.delete_one({"_id": self._id})


class GridFSStorage:
    """Files as GridFS chunks in the service's own database, shared by every instance."""

    def __init__(self, database: Any) -> None:
        self.bucket = AsyncGridFSBucket(database, bucket_name=GRIDFS_BUCKET)
        self._files = database[f"{GRIDFS_BUCKET}.files"]
        self._chunks = database[f"{GRIDFS_BUCKET}.chunks"]
        self._indexed = False

    async def open_writer(self) -> Writer:
        if not self._indexed:
            # The indexes pymongo's GridFS would create (same keys, same names); a first
            # build may run over chunks already there.
            with long_operation():
                await self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
            with long_operation():
                await self._files.create_index([("filename", 1), ("uploadDate", 1)])
            self._indexed = True
        return GridFSWriter(self._files, self._chunks)

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            grid_out = await self.bucket.open_download_stream(ObjectId(key))
        except (NoFile, InvalidId, TypeError):
            raise FileMissingError(key) from None
        stop = grid_out.length if end is None else min(end, grid_out.length)
        await grid_out.seek(start)
        return _grid_chunks(grid_out, stop - start)

    async def delete(self, key: str) -> None:
        # One deadline for the files entry and every chunk (pymongo's delete is one block).
        with contextlib.suppress(NoFile, InvalidId, TypeError), long_operation():
            await self.bucket.delete(ObjectId(key))

    async def remove_abandoned(self) -> None:
        # Chunks without their files entry: an upload cut short (the entry is written last)
        # or a delete cut short (the entry goes first). A file's id tells when its upload
        # began, in real time (not clock.now(), which tests move).
        started_before = ObjectId.from_datetime(
            datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=STALE_TEMP_SECONDS)
        )
        # Streamed by the server, whatever the number of files; deleted in batches.
        pipeline = [
            {"$match": {"files_id": {"$lt": started_before}}},
            {"$group": {"_id": "$files_id"}},
            {
                "$lookup": {
                    "from": self._files.name,
                    "localField": "_id",
                    "foreignField": "_id",
                    "as": "entry",
                }
            },
            {"$match": {"entry": {"$size": 0}}},
            {"$project": {"_id": 1}},
        ]
        removed = 0
        try:
            abandoned: list[ObjectId] = []
            # The aggregate command runs the whole pipeline; the getMores after it only page
            # through the result, under the usual bound.
            with long_operation(SCAN_SECONDS):
                found_ids = await self._chunks.aggregate(pipeline, allowDiskUse=True)
            async for found in found_ids:
                abandoned.append(found["_id"])
                if len(abandoned) == SWEEP_BATCH:
                    removed += await self._remove_chunks(abandoned)
                    abandoned = []
            removed += await self._remove_chunks(abandoned)
        except PyMongoError:
            # A sweep must not keep the service from starting; the next start tries again.
            logger.exception("could not sweep abandoned GridFS uploads")
        if removed:
            logger.info("removed the chunks of %d abandoned GridFS uploads", removed)

    async def _remove_chunks(self, files_ids: list[ObjectId]) -> int:
        if files_ids:
            with long_operation(SCAN_SECONDS):
                await self._chunks.delete_many({"files_id": {"$in": files_ids}})
        return len(files_ids)


async def _grid_chunks(grid_out: Any, remaining: int) -> AsyncIterator[bytes]:
    try:
        while remaining > 0:
            # A read fetches the next batch of chunks (a find or getMore) when it needs one.
            with long_operation():
                data: bytes = await grid_out.read(min(BATCH_BYTES, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await grid_out.close()
