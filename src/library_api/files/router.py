"""Covers and PDF documents of books: uploaded as multipart streams, served back with ranges.

The upload routes take no `File`/`Form` parameters on purpose: FastAPI would read the whole
form before the handler runs. Their dependencies (token, role, declared size, content type)
all run before the first byte of the body is read.
"""

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from ..books.schemas import BookPublic
from ..db import object_id
from ..deps import CurrentUser, LibrarianUser, RuntimeDep
from ..errors import responses
from . import service
from .download import COVER_CACHE_CONTROL, DOCUMENT_CACHE_CONTROL, serve_file
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


async def _cover_upload(_: LibrarianUser, runtime: RuntimeDep, request: Request) -> MultipartUpload:
    return MultipartUpload(request, limit=runtime.settings.max_cover_bytes)


async def _document_upload(
    _: LibrarianUser, runtime: RuntimeDep, request: Request
) -> MultipartUpload:
    return MultipartUpload(request, limit=runtime.settings.max_document_bytes)


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
CoverUpload = Annotated[MultipartUpload, Depends(_cover_upload)]
DocumentUpload = Annotated[MultipartUpload, Depends(_document_upload)]

_IMAGE: dict[str, Any] = {"content": {t: {} for t in ("image/jpeg", "image/png", "image/webp")}}
_PDF: dict[str, Any] = {"content": {"application/pdf": {}}}
_NOT_MODIFIED = {"description": "The client's copy (If-None-Match) is current"}


@router.put(
    "/books/{book_id}/cover",
    response_model=BookPublic,
    responses=responses(400, 401, 403, 404, 413, 415),
    openapi_extra=_upload_body("A JPEG, PNG or WebP image (judged by its content)"),
    summary="Upload or replace a book's cover",
    description=(
        "Multipart field `file`: JPEG, PNG or WebP, judged by its first bytes (the name and "
        "declared type are not trusted), at most `MAX_COVER_BYTES` (413 otherwise, and at once "
        "when `Content-Length` already says so). The old cover is removed once the book "
        "points at the new one; a refused or interrupted upload changes nothing."
    ),
)
async def upload_cover(book_id: str, upload: CoverUpload, runtime: RuntimeDep) -> BookPublic:
    book = await service.replace_file(
        book_id=object_id(book_id, "Book"),
        slot="cover",
        incoming=upload,
        max_bytes=upload.limit,
        storage=runtime.storage,
    )
    return BookPublic.of(book)


@router.get(
    "/books/{book_id}/cover",
    response_model=None,
    response_class=Response,
    responses={200: _IMAGE, 304: _NOT_MODIFIED, **responses(404)},
    summary="A book's cover image (no token needed)",
    description=(
        "Served with its real `Content-Type`, `ETag` (the quoted SHA-256), "
        "`Cache-Control: public, max-age=3600` and `X-Content-Type-Options: nosniff`; "
        "`If-None-Match` with the current ETag gets `304`. `cover_url` carries `?v=` with "
        "part of the image's hash (ignored here), so a replaced cover gets a new URL and no "
        "cache serves the old one."
    ),
)
async def get_cover(
    book_id: str, runtime: RuntimeDep, if_none_match: IfNoneMatch = None
) -> Response:
    return await serve_file(
        lookup=partial(service.get_file, book_id=object_id(book_id, "Book"), slot="cover"),
        storage=runtime.storage,
        cache_control=COVER_CACHE_CONTROL,
        if_none_match=if_none_match,
    )


@router.delete(
    "/books/{book_id}/cover",
    status_code=204,
    response_model=None,
    responses=responses(401, 403, 404),
    summary="Remove a book's cover",
)
async def delete_cover(book_id: str, _: LibrarianUser, runtime: RuntimeDep) -> None:
    await service.remove_file(
        book_id=object_id(book_id, "Book"), slot="cover", storage=runtime.storage
    )


@router.put(
    "/books/{book_id}/document",
    response_model=BookPublic,
    responses=responses(400, 401, 403, 404, 413, 415),
    openapi_extra=_upload_body("A PDF (judged by its content)"),
    summary="Upload or replace a book's PDF document",
    description=(
        "Multipart field `file`: a PDF (it must start with `%PDF-`), at most "
        "`MAX_DOCUMENT_BYTES`. Streamed to storage as it arrives; memory use does not grow "
        "with the file. The client's file name (path, control characters and leading dots "
        "removed) becomes `document.filename`."
    ),
)
async def upload_document(book_id: str, upload: DocumentUpload, runtime: RuntimeDep) -> BookPublic:
    book = await service.replace_file(
        book_id=object_id(book_id, "Book"),
        slot="document",
        incoming=upload,
        max_bytes=upload.limit,
        storage=runtime.storage,
    )
    return BookPublic.of(book)


@router.get(
    "/books/{book_id}/document",
    response_model=None,
    response_class=Response,
    responses={200: _PDF, 206: _PDF, 304: _NOT_MODIFIED, **responses(401, 404, 416)},
    summary="Download a book's PDF document",
    description=(
        "`Content-Disposition: attachment` with the original name (`filename=` ASCII "
        "fallback, `filename*=UTF-8''…`), `ETag`, `Accept-Ranges: bytes`, "
        "`Cache-Control: private, no-cache`. One range (`bytes=a-b`, `bytes=a-`, "
        "`bytes=-n`) gets `206` with `Content-Range`; a range starting past the end gets "
        "`416` with `Content-Range: bytes */size`; several ranges or a malformed header are "
        "ignored (`200`, the whole file)."
    ),
)
async def get_document(
    book_id: str,
    _: CurrentUser,
    runtime: RuntimeDep,
    if_none_match: IfNoneMatch = None,
    byte_range: ByteRange = None,
    if_range: IfRange = None,
) -> Response:
    return await serve_file(
        lookup=partial(service.get_file, book_id=object_id(book_id, "Book"), slot="document"),
        storage=runtime.storage,
        cache_control=DOCUMENT_CACHE_CONTROL,
        if_none_match=if_none_match,
        range_header=byte_range,
        if_range=if_range,
        attachment=True,
        ranges=True,
    )


@router.delete(
    "/books/{book_id}/document",
    status_code=204,
    response_model=None,
    responses=responses(401, 403, 404),
    summary="Remove a book's PDF document",
)
async def delete_document(book_id: str, _: LibrarianUser, runtime: RuntimeDep) -> None:
    await service.remove_file(
        book_id=object_id(book_id, "Book"), slot="document", storage=runtime.storage
    )
