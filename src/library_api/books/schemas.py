from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

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


class BookCreate(BaseModel):
    """A new catalogue entry. `authors` needs at least one name, and no name may be blank."""

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


class BookDocument(BaseModel):
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


class ImportRowError(BaseModel):
    row: int
    detail: str


class ImportReport(BaseModel):
    created: int
    skipped: int
    errors: list[ImportRowError]


def _cover_url(book: Book) -> str | None:
    if book.cover is None:
        return None
    # The hash in the query makes the URL change with the image, so caches never serve a
    # replaced cover; the route itself ignores the query.
    return f"/api/v1/books/{book.id}/cover?v={book.cover.sha256[:16]}"
