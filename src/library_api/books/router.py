from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from ..db import object_id
from ..deps import CurrentUser, LibrarianUser, RuntimeDep
from ..errors import AUTH, STAFF, AppError, responses
from ..files.upload import MultipartUpload
from ..loans import availability
from ..pagination import Page, Pagination
from . import importer, imports, service
from .models import Book
from .schemas import (
    Availability,
    BookCreate,
    BookPublic,
    BookSort,
    BookUpdate,
    ImportReport,
    etag_listed,
    etag_of,
)

router = APIRouter(prefix="/books", tags=["books"])

SearchText = Annotated[str | None, Query(max_length=500)]


async def _import_upload(
    _: LibrarianUser, runtime: RuntimeDep, request: Request
) -> MultipartUpload:
    """The CSV part, read as it arrives (no `File` parameter: FastAPI would spool the form).

    Runs before the body is read: token and role first, then the declared size.
    """
    try:
        return MultipartUpload(request, limit=runtime.settings.max_import_bytes)
    except AppError as exc:
        if exc.code != "unsupported_media_type":
            raise
        # As when `file` was a form parameter: a body that is no multipart form lacks it.
        missing = {"type": "missing", "loc": ("body", "file"), "msg": "Field required"}
        raise RequestValidationError([missing]) from None


ImportUpload = Annotated[MultipartUpload, Depends(_import_upload)]

_ETAG_HEADER = {
    "ETag": {
        "description": "The Book's version: changes whenever any of its fields does",
        "schema": {"type": "string", "example": '"3f786850e387550fdab836ed7e6dc881"'},
    }
}
_ETAG_200: dict[int | str, dict[str, Any]] = {200: {"headers": _ETAG_HEADER}}
_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "Not modified: the ETag in If-None-Match is current",
        "headers": _ETAG_HEADER,
    }
}
IfNoneMatch = Annotated[
    str | None,
    Header(description="An ETag from an earlier answer: 304 while the book is unchanged"),
]
IfMatch = Annotated[
    str | None,
    Header(
        description="The ETag the edit is based on: 412 precondition_failed, and nothing "
        "changes, unless it is still the book's (checked in the write itself)"
    ),
]


def _tagged(book: Book, response: Response) -> BookPublic:
    response.headers["ETag"] = etag_of(book)
    return BookPublic.of(book)


_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The CSV file, at most MAX_IMPORT_BYTES",
                        }
                    },
                }
            }
        },
    }
}


@router.get(
    "",
    response_model=Page[BookPublic],
    responses=responses(*AUTH),
    summary="Search the catalogue",
    description="Every word of `q` must be the start of a word of the title, of an author or "
    "of the ISBN (10 or 13 digits; hyphens in a query word of digits are ignored), ignoring "
    "case and accents. `title` and `author` match the same way on that field only. A text "
    "with no letter or digit at all matches nothing. `genre` equals one of the book's genres, "
    "ignoring case; `available=true` keeps books with a copy on the shelf, `false` those "
    "without. Ties in the sort order are broken by id, so pages are stable.",
)
async def list_books(
    _: CurrentUser,
    paging: Pagination,
    q: SearchText = None,
    title: SearchText = None,
    author: SearchText = None,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    available: bool | None = None,
    sort: BookSort = BookSort.title_asc,
) -> Page[BookPublic]:
    books, total = await service.list_books(
        q=q,
        title=title,
        author=author,
        genre=genre,
        available=available,
        sort=sort,
        skip=paging.skip,
        limit=paging.page_size,
    )
    return paging.wrap([BookPublic.of(b) for b in books], total)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BookPublic,
    responses={
        **responses(*STAFF, "isbn_taken", "invalid_isbn"),
        201: {"headers": _ETAG_HEADER},
    },
    summary="Add a book to the catalogue (librarian)",
    description="`422 invalid_isbn` when the ISBN's checksum does not hold; "
    "`409 isbn_taken` when the ISBN is already catalogued.",
)
async def create_book(body: BookCreate, _: LibrarianUser, response: Response) -> BookPublic:
    return _tagged(await service.create_book(data=body), response)


@router.post(
    "/import",
    response_model=ImportReport,
    responses=responses(
        *STAFF, "invalid_multipart", "file_too_large", "invalid_csv", "invalid_csv_header"
    ),
    openapi_extra=_CSV_BODY,
    summary="Add books from a CSV file (librarian)",
    description="Multipart field `file`: UTF-8 CSV (a byte-order mark is fine) whose first row "
    "is the header `title,authors,isbn,published_date,genres,total_copies` (any order, any "
    "case). `authors` and `genres` are `;`-separated lists; an empty `published_date` "
    "(`YYYY-MM-DD`) or `total_copies` cell means not given (no date, 1 copy). Each row is "
    "checked like `POST /books`: valid rows are created, rows whose ISBN is already catalogued "
    "(also by an earlier row of the file) are `skipped`, every other row is listed in "
    "`errors` with its row number (the header is row 1; blank rows are not counted as data). "
    "A file that is not UTF-8 CSV text or whose quoting is broken is refused whole with "
    "`422 invalid_csv`; a wrong or missing header with `422 invalid_csv_header`. "
    "A file over `MAX_IMPORT_BYTES` (at once when `Content-Length` already says so) or with "
    f"more than {importer.MAX_IMPORT_ROWS:,} data rows is refused whole with "
    "`413 file_too_large`; nothing is created.",
)
async def import_books(upload: ImportUpload, runtime: RuntimeDep, request: Request) -> ImportReport:
    async with importer.spooled(
        upload, directory=runtime.settings.uploads_dir, max_bytes=upload.limit
    ) as csv_file:
        return await imports.import_books(upload=csv_file, gone=request.is_disconnected)


@router.get(
    "/{book_id}",
    response_model=BookPublic,
    responses={**responses(*AUTH, "not_found"), **_ETAG_200, **_NOT_MODIFIED},
    summary="One book",
)
async def get_book(
    book_id: str, _: CurrentUser, response: Response, if_none_match: IfNoneMatch = None
) -> BookPublic | Response:
    book = await service.get_book(book_id=object_id(book_id, "Book"))
    etag = etag_of(book)
    if if_none_match is not None and etag_listed(if_none_match, etag, weak=True):
        return Response(status_code=304, headers={"ETag": etag})
    return _tagged(book, response)


@router.patch(
    "/{book_id}",
    response_model=BookPublic,
    responses={
        **responses(
            *STAFF,
            "not_found",
            "copies_in_use",
            "isbn_taken",
            "invalid_isbn",
            "precondition_failed",
        ),
        **_ETAG_200,
    },
    summary="Change a book (librarian)",
    description="Any subset of the fields; `null` clears an optional one. `409 copies_in_use` "
    "when `total_copies` would fall below the copies on loan or held for a reservation; "
    "`409 isbn_taken`, `422 invalid_isbn` as on create. Copies added while readers wait go "
    "to the oldest waiting reservations (which become `ready`), not to the shelf.",
)
async def update_book(
    book_id: str,
    body: BookUpdate,
    _: LibrarianUser,
    runtime: RuntimeDep,
    response: Response,
    if_match: IfMatch = None,
) -> BookPublic:
    book = await service.update_book(
        book_id=object_id(book_id, "Book"),
        data=body,
        settings=runtime.settings,
        if_match=if_match,
    )
    return _tagged(book, response)


@router.delete(
    "/{book_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(*STAFF, "not_found", "book_on_loan", "precondition_failed"),
    summary="Remove a book, its files and its open reservations (librarian)",
    description="`409 book_on_loan` while a copy is on loan.",
)
async def delete_book(
    book_id: str, _: LibrarianUser, runtime: RuntimeDep, if_match: IfMatch = None
) -> None:
    await service.delete_book(
        book_id=object_id(book_id, "Book"), storage=runtime.storage, if_match=if_match
    )


@router.get(
    "/{book_id}/availability",
    response_model=Availability,
    responses=responses(*AUTH, "not_found"),
    summary="Whether you can borrow or reserve the book now, and your place in its queue",
    description="Judged by the rules `POST /books/{id}/borrow` and `POST /books/{id}/"
    "reservations` apply, for the caller, now: `borrow_blockers` and `reserve_blockers` list "
    "every `409` code each would get (the first is the one it would answer with); `can_*` is "
    "true when its list is empty. A copy held for the caller's ready reservation is theirs to "
    "borrow; one held for another reader is not on the shelf. Holds whose pickup time has "
    "passed count as expired (their copies gone to the next in line or the shelf), as the next "
    "borrow or reservation would make them. `estimated_ready_on`: for a waiting caller at "
    "position p, the date of the p-th earliest `due_at` among the book's active loans (null "
    "when fewer than p are out). Changes nothing.",
)
async def get_availability(book_id: str, user: CurrentUser, runtime: RuntimeDep) -> Availability:
    return await availability.get_availability(
        book_id=object_id(book_id, "Book"), reader=user, settings=runtime.settings
    )
