import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.config import JsonDict

from .models import Book


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _unique_genres(genres: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for genre in genres:
        if genre.casefold() not in seen:
            seen.add(genre.casefold())
            kept.append(genre)
    return kept


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Author = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Authors = Annotated[list[Author], Field(min_length=1, max_length=50)]
Genre = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Genres = Annotated[list[Genre], Field(max_length=20), AfterValidator(_unique_genres)]
# Only the length here: the checksum is checked by the service, which answers 422 invalid_isbn.
IsbnText = Annotated[str, Field(max_length=1000, description="ISBN-10 or ISBN-13; hyphens allowed")]
Copies = Annotated[int, Field(ge=0, le=100_000)]
Description = Annotated[str | None, Field(max_length=5000), AfterValidator(_blank_to_none)]
Publisher = Annotated[str | None, Field(max_length=200), AfterValidator(_blank_to_none)]
Language = Annotated[str | None, Field(max_length=35), AfterValidator(_blank_to_none)]
PageCount = Annotated[int | None, Field(ge=1, le=100_000)]


# Not in the demo catalogue, so the example can be created as it stands after `seed-demo`.
BOOK_CREATE_EXAMPLE: JsonDict = {
    "title": "The Left Hand of Darkness",
    "authors": ["Ursula K. Le Guin"],
    "isbn": "978-0-441-47812-5",
    "published_date": "1969-03-01",
    "genres": ["Science fiction"],
    "description": "An envoy from the Ekumen visits the ice world of Gethen.",
    "publisher": "Ace Books",
    "language": "en",
    "page_count": 304,
    "total_copies": 2,
}


class BookCreate(BaseModel):
    """A new catalogue entry. `authors` needs at least one name, and no name may be blank."""

    model_config = ConfigDict(json_schema_extra={"examples": [BOOK_CREATE_EXAMPLE]})

    title: Title
    authors: Authors
    isbn: IsbnText
    published_date: date | None = None
    genres: Genres = []
    description: Description = None
    publisher: Publisher = None
    language: Language = None
    page_count: PageCount = None
    total_copies: Copies = 1


# Fields a PATCH may change but never set to null.
_NOT_NULL = ("title", "authors", "isbn", "genres", "total_copies")


class BookUpdate(BaseModel):
    """Any subset of the fields; `null` clears an optional field."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"total_copies": 3, "genres": ["Novel", "Romance"]}]}
    )

    title: Title | None = None
    authors: Authors | None = None
    isbn: IsbnText | None = None
    published_date: date | None = None
    genres: Genres | None = None
    description: Description = None
    publisher: Publisher = None
    language: Language = None
    page_count: PageCount = None
    total_copies: Copies | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> Self:
        nulled = [f for f in _NOT_NULL if f in self.model_fields_set and getattr(self, f) is None]
        if nulled:
            raise ValueError(f"{', '.join(nulled)} cannot be null")
        return self


class BookSort(StrEnum):
    title_asc = "title"
    title_desc = "-title"
    published_asc = "published_date"
    published_desc = "-published_date"
    created_asc = "created_at"
    created_desc = "-created_at"


_DOCUMENT_EXAMPLE: JsonDict = {
    "filename": "pride-and-prejudice.pdf",
    "size": 48213,
    "content_type": "application/pdf",
    "sha256": "3b7c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c",
    "uploaded_at": "2026-11-20T16:45:00Z",
}


class BookDocument(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DOCUMENT_EXAMPLE]})

    filename: str
    size: int
    content_type: str
    sha256: str
    uploaded_at: datetime


BookStatus = Literal["available", "partial", "borrowed", "unavailable"]


def book_status(book: Book) -> BookStatus:
    if book.total_copies <= 0:
        return "unavailable"
    if book.available_copies >= book.total_copies:
        return "available"
    if book.available_copies <= 0:
        return "borrowed"
    return "partial"


class BookPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6650f1c2a4b5c6d7e8f90123",
                    "title": "Pride and Prejudice",
                    "authors": ["Jane Austen"],
                    "isbn": "9780140440126",
                    "published_date": "1813-01-28",
                    "genres": ["Novel", "Romance"],
                    "description": "Elizabeth Bennet meets Mr Darcy.",
                    "publisher": "Penguin Classics",
                    "language": "en",
                    "page_count": 480,
                    "total_copies": 4,
                    "available_copies": 3,
                    "status": "partial",
                    "cover_url": "/api/v1/books/6650f1c2a4b5c6d7e8f90123/cover?v=9f2c1e0b7a4d3c2b",
                    "document": _DOCUMENT_EXAMPLE,
                    "created_at": "2026-11-02T09:30:00Z",
                    "updated_at": "2026-11-20T16:45:00Z",
                }
            ]
        }
    )

    id: str
    title: str
    authors: list[str]
    isbn: str
    published_date: date | None
    genres: list[str]
    description: str | None
    publisher: str | None
    language: str | None
    page_count: int | None
    total_copies: int
    available_copies: int
    status: BookStatus
    cover_url: str | None
    document: BookDocument | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, book: Book) -> "BookPublic":
        document = None
        if book.document is not None:
            document = BookDocument(
                filename=book.document.filename,
                size=book.document.size,
                content_type=book.document.content_type,
                sha256=book.document.sha256,
                uploaded_at=book.document.uploaded_at,
            )
        return cls(
            id=str(book.id),
            title=book.title,
            authors=book.authors,
            isbn=book.isbn,
            published_date=book.published_date,
            genres=book.genres,
            description=book.description,
            publisher=book.publisher,
            language=book.language,
            page_count=book.page_count,
            total_copies=book.total_copies,
            available_copies=max(book.available_copies, 0),
            status=book_status(book),
            cover_url=_cover_url(book),
            document=document,
            created_at=book.created_at,
            updated_at=book.updated_at,
        )


# The codes of `loans/rules.py` BORROW_REFUSALS and `reservations/rules.py` RESERVE_REFUSALS
# (a test keeps them equal), in their precedence order.
BorrowBlocker = Literal[
    "has_overdue_loans",
    "fines_outstanding",
    "already_borrowed",
    "loan_limit_reached",
    "no_copies_available",
]
ReserveBlocker = Literal["copies_available", "already_borrowed", "already_reserved"]


class Availability(BaseModel):
    """What a borrow or a reservation of the book by the caller would meet now."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "book_id": "6650f1c2a4b5c6d7e8f90123",
                    "available_copies": 0,
                    "waiting_reservations": 3,
                    "can_borrow": False,
                    "borrow_blockers": ["no_copies_available"],
                    "can_reserve": False,
                    "reserve_blockers": ["already_reserved"],
                    "my_loan_id": None,
                    "my_reservation_id": "6650f4e5c6d7e8f9a0b1c2d3",
                    "my_position": 2,
                    "estimated_ready_on": "2026-12-07",
                }
            ]
        }
    )

    book_id: str
    available_copies: int = Field(description="Copies on the shelf, for anyone to borrow")
    waiting_reservations: int = Field(description="Readers waiting in the book's queue")
    can_borrow: bool = Field(description="`borrow_blockers` is empty")
    borrow_blockers: list[BorrowBlocker] = Field(
        description="Every `409` code a borrow by the caller would get now; the first is "
        "the one it would answer with"
    )
    can_reserve: bool = Field(description="`reserve_blockers` is empty")
    reserve_blockers: list[ReserveBlocker] = Field(
        description="Every `409` code a reservation by the caller would get now; the first "
        "is the one it would answer with"
    )
    my_loan_id: str | None = Field(description="The caller's active loan of the book")
    my_reservation_id: str | None = Field(
        description="The caller's open (waiting or ready) reservation of the book"
    )
    my_position: int | None = Field(description="The caller's 1-based place in the queue")
    estimated_ready_on: date | None = Field(
        description="For a waiting caller at position p: the date of the p-th earliest due "
        "date among the book's active loans (null when fewer than p are out)"
    )


class ImportRowError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"row": 4, "detail": "isbn: Not a valid ISBN-10 or ISBN-13"}]
        }
    )

    row: int
    detail: str


class ImportReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 54,
                    "skipped": 1,
                    "errors": [{"row": 4, "detail": "isbn: Not a valid ISBN-10 or ISBN-13"}],
                }
            ]
        }
    )

    created: int
    skipped: int
    errors: list[ImportRowError]


def _cover_url(book: Book) -> str | None:
    if book.cover is None:
        return None
    # The hash in the query makes the URL change with the image, so caches never serve a
    # replaced cover; the route itself ignores the query.
    return f"/api/v1/books/{book.id}/cover?v={book.cover.sha256[:16]}"


def etag_of(book: Book) -> str:
    """A strong ETag: a hash of the Book as answered, so it changes whenever any field does
    (the copy counts included)."""
    body = BookPublic.of(book).model_dump_json().encode()
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-Match (strong comparison) or If-None-Match (weak) header names `etag`;
    `*` names any."""
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if weak:
            tag = tag.removeprefix("W/")
        if tag == etag:
            return True
    return False
