"""Covers and PDF documents of books: uploaded as multipart streams, served back with ranges.

The upload routes take no `File`/`Form` parameters on purpose: FastAPI would read the whole
form before the handler runs. Their dependencies (token, role, declared size, content type)
all run before the first byte of the body is read.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from ..books.schemas import BookPublic, etag_of
from ..config import Settings
from ..db import object_id
from ..deps import CurrentUser, LibrarianUser, RuntimeDep
from ..errors import AUTH, STAFF, responses
from . import service
from .download import COVER_CACHE_CONTROL, DOCUMENT_CACHE_CONTROL, serve_file
from .service import Slot
from .upload import MultipartUpload

router = APIRouter(tags=["files"])


def _upload_body(description: str) -> dict[str, Any]:
    """The request body FastAPI cannot infer without `File` parameters, for the OpenAPI document."""
    schema = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }


IfNoneMatch = Annotated[
    str | None, Header(description="ETags the client holds; the current one gets 304")
]
ByteRange = Annotated[
    str | None,
    Header(
        alias="Range",
        description="One range: `bytes=a-b`, `bytes=a-` or `bytes=-n`; others are ignored",
    ),
]
IfRange = Annotated[
    str | None, Header(description="Honour `Range` only while the ETag is still this one")
]
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _header(description: str, example: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}, "example": example}


_ETAG = _header(
    "The quoted SHA-256 of the file",
    '"9f2c1e0b7a4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"',
)
_COVER_HEADERS = {
    "ETag": _ETAG,
    "Cache-Control": _header("Covers may be cached for an hour", "public, max-age=3600"),
}
_DOCUMENT_HEADERS = {
    "ETag": _ETAG,
    "Cache-Control": _header("Revalidated (cheaply, by ETag) on every use", "private, no-cache"),
    "Accept-Ranges": _header("One byte range may be asked for", "bytes"),
    "Content-Disposition": _header(
        "The original file name, sanitised",
        'attachment; filename="pride-and-prejudice.pdf"; '
        "filename*=UTF-8''pride-and-prejudice.pdf",
    ),
}
_IMAGE: dict[str, Any] = {
    "description": "The image, with its real media type",
    "headers": _COVER_HEADERS,
    "content": dict.fromkeys(("image/jpeg", "image/png", "image/webp"), _BINARY),
}
_PDF: dict[str, Any] = {
    "description": "The whole PDF",
    "headers": _DOCUMENT_HEADERS,
    "content": {"application/pdf": _BINARY},
}
_PDF_PART: dict[str, Any] = {
    "description": "The part of the PDF that `Range` asked for",
    "headers": {
        **_DOCUMENT_HEADERS,
        "Content-Range": _header("The bytes sent, of how many", "bytes 0-1023/48213"),
    },
    "content": {"application/pdf": _BINARY},
}
_COVER_NOT_MODIFIED = {
    "description": "The client's copy (If-None-Match) is current",
    "headers": _COVER_HEADERS,
}
_DOCUMENT_NOT_MODIFIED = {
    "description": "The client's copy (If-None-Match) is current",
    "headers": _DOCUMENT_HEADERS,
}
_UPLOAD_ERRORS = {
    **responses(
        *STAFF, "not_found", "invalid_multipart", "file_too_large", "unsupported_media_type"
    ),
    200: {
        "headers": {
            "ETag": {
                "description": "The Book's version after the upload",
                "schema": {"type": "string", "example": '"3f786850e387550fdab836ed7e6dc881"'},
            }
        }
    },
}


def _unsatisfiable() -> dict[int | str, dict[str, Any]]:
    entries = responses(*AUTH, "not_found", "range_not_satisfiable")
    entries[416]["headers"] = {
        "Content-Range": _header("`*` and the file's size", "bytes */48213"),
        "Accept-Ranges": _header("One byte range may be asked for", "bytes"),
    }
    return entries


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a GET asks of the file beyond its book: the client's ETags, a byte range."""

    if_none_match: str | None = None
    byte_range: str | None = None
    if_range: str | None = None


async def _cover_conditions(if_none_match: IfNoneMatch = None) -> Conditions:
    return Conditions(if_none_match)


async def _document_conditions(
    _: CurrentUser,
    if_none_match: IfNoneMatch = None,
    byte_range: ByteRange = None,
    if_range: IfRange = None,
) -> Conditions:
    return Conditions(if_none_match, byte_range, if_range)


@dataclass(frozen=True, slots=True)
class SlotRoutes:
    """How one slot's PUT, GET and DELETE differ from the other's; the rest is `add_slot`.

    `conditions` reads the GET's headers (and, for a slot that is not public, checks the
    token); with `ranges` the GET honours one byte range and sends the file as an attachment.
    """

    slot: Slot
    limit: Callable[[Settings], int]
    put: dict[str, Any]
    get: dict[str, Any]
    delete_summary: str
    conditions: Callable[..., Awaitable[Conditions]]
    cache_control: str
    ranges: bool


def add_slot(routes: SlotRoutes) -> None:
    """Registers PUT, GET and DELETE /books/{book_id}/<slot>, named `upload_<slot>` etc."""
    slot, path = routes.slot, f"/books/{{book_id}}/{routes.slot}"

    async def incoming(_: LibrarianUser, runtime: RuntimeDep, request: Request) -> MultipartUpload:
        return MultipartUpload(request, limit=routes.limit(runtime.settings))

    async def upload(
        book_id: str,
        upload: Annotated[MultipartUpload, Depends(incoming)],
        runtime: RuntimeDep,
        response: Response,
    ) -> BookPublic:
        book = await service.replace_file(
            book_id=object_id(book_id, "Book"),
            slot=slot,
            incoming=upload,
            max_bytes=upload.limit,
            storage=runtime.storage,
        )
        # Every answer that returns a Book carries its ETag (books/router.py).
        response.headers["ETag"] = etag_of(book)
        return BookPublic.of(book)

    async def download(
        book_id: str,
        runtime: RuntimeDep,
        conditions: Annotated[Conditions, Depends(routes.conditions)],
    ) -> Response:
        return await serve_file(
            lookup=partial(service.get_file, book_id=object_id(book_id, "Book"), slot=slot),
            storage=runtime.storage,
            cache_control=routes.cache_control,
            if_none_match=conditions.if_none_match,
            range_header=conditions.byte_range,
            if_range=conditions.if_range,
            attachment=routes.ranges,
            ranges=routes.ranges,
        )

    async def delete(book_id: str, _: LibrarianUser, runtime: RuntimeDep) -> None:
        await service.remove_file(
            book_id=object_id(book_id, "Book"), slot=slot, storage=runtime.storage
        )

    router.put(
        path,
        name=f"upload_{slot}",
        response_model=BookPublic,
        responses=_UPLOAD_ERRORS,
        **routes.put,
    )(upload)
    router.get(
        path, name=f"get_{slot}", response_model=None, response_class=Response, **routes.get
    )(download)
    router.delete(
        path,
        name=f"delete_{slot}",
        status_code=204,
        response_model=None,
        responses=responses(*STAFF, "not_found"),
        summary=routes.delete_summary,
    )(delete)


add_slot(
    SlotRoutes(
        slot="cover",
        limit=lambda settings: settings.max_cover_bytes,
        put={
            "openapi_extra": _upload_body("A JPEG, PNG or WebP image (judged by its content)"),
            "summary": "Upload or replace a book's cover",
            "description": (
                "Multipart field `file`: JPEG, PNG or WebP, judged by its first bytes (the name "
                "and declared type are not trusted), at most `MAX_COVER_BYTES` (413 otherwise, "
                "and at once when `Content-Length` already says so). The old cover is removed "
                "once the book points at the new one; a refused or interrupted upload changes "
                "nothing."
            ),
        },
        get={
            "responses": {200: _IMAGE, 304: _COVER_NOT_MODIFIED, **responses("not_found")},
            "summary": "A book's cover image (no token needed)",
            "description": (
                "Served with its real `Content-Type`, `ETag` (the quoted SHA-256), "
                "`Cache-Control: public, max-age=3600` and `X-Content-Type-Options: nosniff`; "
                "`If-None-Match` with the current ETag gets `304`. `cover_url` carries `?v=` "
                "with part of the image's hash (ignored here), so a replaced cover gets a new "
                "URL and no cache serves the old one."
            ),
        },
        delete_summary="Remove a book's cover",
        conditions=_cover_conditions,
        cache_control=COVER_CACHE_CONTROL,
        ranges=False,
    )
)
add_slot(
    SlotRoutes(
        slot="document",
        limit=lambda settings: settings.max_document_bytes,
        put={
            "openapi_extra": _upload_body("A PDF (judged by its content)"),
            "summary": "Upload or replace a book's PDF document",
            "description": (
                "Multipart field `file`: a PDF (it must start with `%PDF-`), at most "
                "`MAX_DOCUMENT_BYTES`. Streamed to storage as it arrives; memory use does not "
                "grow with the file. The client's file name (path, control characters and "
                "leading dots removed) becomes `document.filename`."
            ),
        },
        get={
            "responses": {
                200: _PDF,
                206: _PDF_PART,
                304: _DOCUMENT_NOT_MODIFIED,
                **_unsatisfiable(),
            },
            "summary": "Download a book's PDF document",
            "description": (
                "`Content-Disposition: attachment` with the original name (`filename=` ASCII "
                "fallback, `filename*=UTF-8''…`), `ETag`, `Accept-Ranges: bytes`, "
                "`Cache-Control: private, no-cache`. One range (`bytes=a-b`, `bytes=a-`, "
                "`bytes=-n`) gets `206` with `Content-Range`; a range starting past the end "
                "gets `416` with `Content-Range: bytes */size`; several ranges or a malformed "
                "header are ignored (`200`, the whole file)."
            ),
        },
        delete_summary="Remove a book's PDF document",
        conditions=_document_conditions,
        cache_control=DOCUMENT_CACHE_CONTROL,
        ranges=True,
    )
)
