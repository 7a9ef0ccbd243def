"""Stored files served back: ETag and If-None-Match, one byte range, ~1 MiB chunks.

Starlette's FileResponse reads 64 KiB at a time and only knows local paths; this serves
either backend through `Storage.open_reader`, whose chunks are ~1 MiB.
"""

import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import Response
from fastapi.responses import StreamingResponse

from ..books.models import StoredFile
from ..books.schemas import etag_listed
from ..errors import AppError, not_found
from .storage import FileMissingError, Storage

logger = logging.getLogger("library_api")

# Covers are public and change rarely; an hour keeps clients and proxies from asking again
# for every list page, and the ETag makes the question cheap (304) once the hour is over.
COVER_CACHE_CONTROL = "public, max-age=3600"
# Documents need a token: never in a shared cache, and revalidated (cheaply) on every use.
DOCUMENT_CACHE_CONTROL = "private, no-cache"

_RANGE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)", re.IGNORECASE)
# Positions longer than this are past the end of any file; int() of thousands of digits would
# be slow, then refused by Python's digit limit.
_MAX_DIGITS = 18
# RFC 5987 attr-char beyond letters, digits and "-._~" (which `quote` never escapes).
_ATTR_CHAR_EXTRA = "!#$&+^`|"


def etag_of(stored: StoredFile) -> str:
    return f'"{stored.sha256}"'


def range_not_satisfiable(size: int) -> AppError:
    return AppError(
        416,
        "range_not_satisfiable",
        f"The requested range is outside the file's {size} bytes",
        {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """First and last byte (inclusive) of one `bytes=` range; None serves the whole file.

    A malformed header, several ranges or `a-b` with b < a are ignored (RFC 9110 lets a
    server do so); a range starting past the end, or `-0`, is unsatisfiable (416).
    """
    if header is None:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        return None
    first, last = (_position(group) for group in found.groups())
    if first is None:
        if last is None:
            return None
        suffix = last
        if suffix == 0:
            raise range_not_satisfiable(size)
        return max(size - suffix, 0), size - 1
    if last is not None and last < first:
        return None
    if first >= size:
        raise range_not_satisfiable(size)
    return first, min(last, size - 1) if last is not None else size - 1


def _position(digits: str) -> int | None:
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def _ascii(char: str) -> str:
    if char.isascii():
        return char if char.isprintable() else "_"
    plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return plain if plain.isprintable() and plain else "_"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename=` for old clients and the exact UTF-8 `filename*=`."""
    fallback = "".join(_ascii(c) for c in filename).replace("\\", "_").replace('"', "_")
    encoded = quote(filename, safe=_ATTR_CHAR_EXTRA)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


async def serve_file(
    *,
    lookup: Callable[[], Awaitable[StoredFile]],
    storage: Storage,
    cache_control: str,
    if_none_match: str | None = None,
    range_header: str | None = None,
    if_range: str | None = None,
    attachment: bool = False,
    ranges: bool = False,
) -> Response:
    """The file `lookup` names (which raises 404 when there is none), as the request asks."""
    for attempt in range(2):
        stored = await lookup()
        etag = etag_of(stored)
        headers = {
            "ETag": etag,
            "Cache-Control": cache_control,
            "X-Content-Type-Options": "nosniff",
        }
        if ranges:
            headers["Accept-Ranges"] = "bytes"
        # If-None-Match uses the weak comparison: `W/` is ignored, `*` matches any file.
        if if_none_match is not None and etag_listed(if_none_match, etag, weak=True):
            return Response(status_code=304, headers=headers)
        span = None
        if ranges and (if_range is None or if_range.strip() == etag):
            span = byte_range(range_header, stored.size)
        start, end = span or (0, stored.size - 1)
        try:
            chunks = await storage.open_reader(stored.key, start, end + 1)
        except FileMissingError:
            # Replaced between the lookup and the open: the next lookup finds the new file.
            if attempt == 0:
                continue
            logger.warning("stored file %s is missing", stored.key)
            raise not_found("File") from None
        if attachment:
            headers["Content-Disposition"] = content_disposition(stored.filename)
        headers["Content-Length"] = str(end - start + 1)
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
        return StreamingResponse(
            chunks, status_code=status, headers=headers, media_type=stored.content_type
        )
    raise AssertionError("unreachable")
