"""Reading a catalogue CSV upload one record at a time, never the whole file at once.

The upload is streamed from the request into a temporary file under UPLOADS_DIR (the import
reads it twice: once to check it, once to import it), never held in memory and never larger
than MAX_IMPORT_BYTES. Bytes are decoded as they are read back; lines are gathered into a
record until its quotes balance (RFC 4180: a field with a line break is quoted), so the csv
module parses one record at a time and memory holds one chunk and one record, whatever the
file's size.
"""

import asyncio
import codecs
import contextlib
import csv
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncBufferedReader

from ..errors import AppError
from ..files.storage import TEMP_PREFIX, discard_temporary
from ..files.upload import file_too_large

COLUMNS = ("title", "authors", "isbn", "published_date", "genres", "total_copies")
LIST_SEPARATOR = ";"
CHUNK_BYTES = 64 * 1024
# One record this long is not a catalogue row: most likely a quote that is never closed.
MAX_RECORD_CHARS = 64 * 1024
# Every data row may end up in the report's `errors`, which is kept whole (created + skipped
# + errors = data rows); a 2-byte bad row costs about 600 bytes there, so the byte limit alone
# would let a 20 MiB file of them take gigabytes. More rows than this: the file is refused.
MAX_IMPORT_ROWS = 100_000
# Bytes gathered before each write of the temporary file (one thread hop per write).
SPOOL_BATCH_BYTES = 1 << 20
# After "\n", or after "\r" not followed by "\n": Windows, Unix and old Mac line ends.
_LINE_END = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


class Upload(Protocol):
    """What is read from an uploaded file (the spooled aiofiles file, or an UploadFile)."""

    async def read(self, size: int = -1, /) -> bytes: ...

    async def seek(self, offset: int, /) -> object: ...


class Incoming(Protocol):
    """A file part as it arrives (files.upload.MultipartUpload)."""

    def chunks(self) -> AsyncIterator[bytes]: ...


@contextlib.asynccontextmanager
async def spooled(
    incoming: Incoming, *, directory: Path, max_bytes: int
) -> AsyncIterator[AsyncBufferedReader]:
    """The whole upload in a temporary file under `directory`, removed on the way out.

    413 `file_too_large` as soon as more than `max_bytes` have arrived. The file is removed
    whatever happens: success, refusal, a client that goes away, a cancelled request.
    """
    await aiofiles.os.makedirs(directory, exist_ok=True)
    # The prefix of the storage's temporaries: the start-up sweep removes those a crash left.
    path = directory / f"{TEMP_PREFIX}import-{uuid.uuid4().hex}"
    file = await aiofiles.open(path, "x+b")
    try:
        received = 0
        batch = bytearray()
        async for chunk in incoming.chunks():
            received += len(chunk)
            if received > max_bytes:
                raise file_too_large(max_bytes)
            batch += chunk
            if len(batch) >= SPOOL_BATCH_BYTES:
                await file.write(batch)
                batch.clear()
        await file.write(batch)
        await file.seek(0)
        yield file
    finally:
        # Shielded: a cancelled request must still not leave its file behind.
        await asyncio.shield(discard_temporary(path, file))


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # the header is row 1
    values: dict[str, str] | None  # column -> cell; None when the row has the wrong width
    problem: str | None = None


def invalid_csv(detail: str) -> AppError:
    return AppError(422, "invalid_csv", detail)


def _header_error() -> AppError:
    return AppError(
        422,
        "invalid_csv_header",
        "The first row must be the header " + ",".join(COLUMNS),
    )


async def _lines(upload: Upload) -> AsyncIterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    offset = 0
    while True:
        chunk = await upload.read(CHUNK_BYTES)
        final = not chunk
        try:
            text = decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            raise invalid_csv(
                f"The file is not UTF-8 text (byte {offset + max(exc.start, 0)})"
            ) from None
        offset += len(chunk)
        if "\x00" in text:
            raise invalid_csv("The file contains NUL characters: it is not CSV text")
        pending += text
        # A "\r" at the end of a chunk may be the first half of a "\r\n".
        carry = "\r" if not final and pending.endswith("\r") else ""
        pieces = _LINE_END.split(pending[: len(pending) - len(carry)])
        # The last piece has no line end yet: it waits for the next chunk.
        pending = ("" if final else pieces.pop()) + carry
        for line in pieces:
            if line:
                yield line
        if len(pending) > MAX_RECORD_CHARS:
            raise invalid_csv(f"A line is longer than {MAX_RECORD_CHARS} characters")
        if final:
            return


async def _records(upload: Upload) -> AsyncIterator[list[str]]:
    lines: list[str] = []
    size = quotes = 0
    number = 0
    async for line in _lines(upload):
        lines.append(line)
        size += len(line)
        quotes += line.count('"')
        if quotes % 2:
            if size > MAX_RECORD_CHARS:
                raise invalid_csv(f"Row {number + 1}: a quoted field is never closed")
            continue
        number += 1
        try:
            parsed = list(csv.reader(lines, strict=True))
        except csv.Error as exc:
            raise invalid_csv(f"Row {number}: {exc}") from None
        yield parsed[0] if parsed else []
        lines, size, quotes = [], 0, 0
    if lines:
        raise invalid_csv(f"Row {number + 1}: a quoted field is never closed")


async def read_rows(upload: Upload) -> AsyncIterator[Row]:
    """The data rows of the file, numbered as in the file; blank rows are left out.

    Raises AppError 422 `invalid_csv` (not UTF-8 text, or broken quoting),
    `invalid_csv_header` (the first row is not the expected header) or 413 `file_too_large`
    (more than MAX_IMPORT_ROWS data rows).
    """
    records = _records(upload)
    header = await anext(records, None)
    names = [name.strip().lower() for name in header or []]
    if sorted(names) != sorted(COLUMNS):
        raise _header_error()
    number, data_rows = 1, 0
    async for cells in records:
        number += 1
        if not any(cell.strip() for cell in cells):
            continue
        data_rows += 1
        if data_rows > MAX_IMPORT_ROWS:
            raise AppError(
                413, "file_too_large", f"The file has more than {MAX_IMPORT_ROWS} data rows"
            )
        if len(cells) != len(names):
            yield Row(number, None, f"Expected {len(names)} fields, found {len(cells)}")
            continue
        yield Row(number, dict(zip(names, cells, strict=True)))


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]


def book_fields(values: dict[str, str]) -> dict[str, Any]:
    """A row as the fields of BookCreate; an empty date or copies cell means "not given"."""
    fields: dict[str, Any] = {
        "title": values["title"],
        "authors": _split(values["authors"]),
        "isbn": values["isbn"],
        "genres": _split(values["genres"]),
    }
    for name in ("published_date", "total_copies"):
        if values[name].strip():
            fields[name] = values[name].strip()
    return fields
