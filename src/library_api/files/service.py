"""A book's cover and document: accepted by content, stored by a backend, recorded atomically.

An upload is written to storage as it arrives and committed under a generated key; only then
does ONE update point the book at it, and only after that is the file it replaced removed.
Any failure on the way (wrong type, too big, client gone, unknown book, database error)
throws away what was written and leaves the book and its old file as they were.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NotRequired, Protocol, TypedDict, cast

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from .. import clock
from ..books.models import Book, StoredFile
from ..errors import AppError, not_found
from .storage import Storage, Writer
from .upload import file_too_large

logger = logging.getLogger("library_api")

Slot = Literal["cover", "document"]

# Enough bytes to tell every accepted format apart (WebP needs 12).
SNIFF_BYTES = 16


@dataclass(frozen=True, slots=True)
class Format:
    content_type: str
    suffix: str
    matches: Callable[[bytes], bool]


FORMATS: dict[Slot, tuple[Format, ...]] = {
    "cover": (
        Format("image/jpeg", ".jpg", lambda head: head.startswith(b"\xff\xd8\xff")),
        Format("image/png", ".png", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
        Format("image/webp", ".webp", lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
    ),
    "document": (Format("application/pdf", ".pdf", lambda head: head.startswith(b"%PDF-")),),
}
LABELS: dict[Slot, str] = {"cover": "Cover", "document": "Document"}


class _FileRow(TypedDict):
    """A `StoredFile` as the book keeps it."""

    key: str
    filename: str
    size: int
    content_type: str
    sha256: str
    uploaded_at: datetime


class _BookFiles(TypedDict):
    """A book read for its files (the whole book, or `{slot: 1}`); None once removed."""

    _id: ObjectId
    cover: NotRequired[_FileRow | None]
    document: NotRequired[_FileRow | None]


class IncomingFile(Protocol):
    """An upload as it arrives; `filename` (already sanitised) is set once chunks flow."""

    filename: str

    def chunks(self) -> AsyncIterator[bytes]: ...


def sniff(slot: Slot, head: bytes) -> Format:
    for candidate in FORMATS[slot]:
        if candidate.matches(head):
            return candidate
    accepted = ", ".join(f.content_type for f in FORMATS[slot])
    raise AppError(415, "unsupported_media_type", f"The file's content is not one of: {accepted}")


def _books() -> Any:
    return Book.get_pymongo_collection()


async def _book_exists(book_id: PydanticObjectId) -> bool:
    return await _books().find_one({"_id": book_id}, {"_id": 1}) is not None


async def _remove_unless_used(
    storage: Storage, book_id: PydanticObjectId, slot: Slot, key: str
) -> None:
    """After a failed update of the book: the update may still have been applied (an answer
    lost on the way back), so the new file goes only when the book does not point at it."""
    try:
        used = await _books().count_documents({"_id": book_id, f"{slot}.key": key}, limit=1)
    except PyMongoError:
        logger.exception("could not tell whether book %s uses file %s; it is kept", book_id, key)
        return
    if not used:
        await _remove(storage, key)


async def _remove(storage: Storage, key: str) -> None:
    """Remove a file that nothing points at any more; a failure only leaves an orphan."""
    try:
        await asyncio.shield(storage.delete(key))
    except Exception:
        logger.exception("could not remove stored file %s; it is left behind", key)


async def _receive(
    slot: Slot, incoming: IncomingFile, max_bytes: int, storage: Storage
) -> tuple[Writer, Format]:
    """The upload, written and ready to commit; nothing is stored before its type is known."""
    head = b""
    accepted: Format | None = None
    writer: Writer | None = None
    received = 0
    try:
        async for chunk in incoming.chunks():
            received += len(chunk)
            if received > max_bytes:
                raise file_too_large(max_bytes)
            if writer is None:
                head += chunk
                if len(head) < SNIFF_BYTES:
                    continue
                accepted = sniff(slot, head)
                writer = await storage.open_writer()
                chunk, head = head, b""
            await writer.write(chunk)
        if writer is None:
            accepted = sniff(slot, head)
            writer = await storage.open_writer()
            await writer.write(head)
    except BaseException:
        if writer is not None:
            await writer.abort()
        raise
    assert accepted is not None
    return writer, accepted


async def replace_file(
    *,
    book_id: PydanticObjectId,
    slot: Slot,
    incoming: IncomingFile,
    max_bytes: int,
    storage: Storage,
) -> Book:
    # A cheap look first, so an upload for an unknown book is refused before its body is read;
    # the update below still decides, should the book be deleted meanwhile.
    if not await _book_exists(book_id):
        raise not_found("Book")
    writer, accepted = await _receive(slot, incoming, max_bytes, storage)
    try:
        key = await writer.commit(suffix=accepted.suffix)
    except BaseException:
        await writer.abort()
        raise
    now = clock.now()
    stored = StoredFile(
        key=key,
        filename=incoming.filename or f"{slot}{accepted.suffix}",
        size=writer.size,
        content_type=accepted.content_type,
        sha256=writer.sha256,
        uploaded_at=now,
    )
    changes = {slot: stored.model_dump(), "updated_at": now}
    try:
        found = await _books().find_one_and_update(
            {"_id": book_id}, {"$set": changes}, return_document=ReturnDocument.BEFORE
        )
    except BaseException:
        await asyncio.shield(_remove_unless_used(storage, book_id, slot, key))
        raise
    before = cast(_BookFiles | None, found)
    if before is None:
        await _remove(storage, key)
        raise not_found("Book")
    replaced = before.get(slot)
    if replaced:
        await _remove(storage, replaced["key"])
    book: Book = Book.model_validate({**before, **changes})
    return book


async def remove_file(*, book_id: PydanticObjectId, slot: Slot, storage: Storage) -> None:
    found = await _books().find_one_and_update(
        {"_id": book_id, slot: {"$ne": None}},
        {"$set": {slot: None, "updated_at": clock.now()}},
        return_document=ReturnDocument.BEFORE,
    )
    before = cast(_BookFiles | None, found)
    if before is None:
        raise not_found(LABELS[slot] if await _book_exists(book_id) else "Book")
    removed = before[slot]
    assert removed is not None  # the update's filter asked for one
    await _remove(storage, removed["key"])


async def get_file(*, book_id: PydanticObjectId, slot: Slot) -> StoredFile:
    raw = cast(_BookFiles | None, await _books().find_one({"_id": book_id}, {slot: 1}))
    if raw is None:
        raise not_found("Book")
    if not raw.get(slot):
        raise not_found(LABELS[slot])
    return StoredFile.model_validate(raw[slot])
