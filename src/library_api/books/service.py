"""The catalogue: creating, finding, changing and removing books."""

from datetime import datetime

from beanie import PydanticObjectId
from pymongo.errors import DuplicateKeyError

from .. import clock
from ..errors import AppError, not_found
from . import terms
from .models import Book
from .schemas import BookCreate


def _isbn_taken() -> AppError:
    return AppError(409, "isbn_taken", "A book with this ISBN is already catalogued")


def new_book(data: BookCreate, *, now: datetime) -> Book:
    """A book ready to insert, its search words filled in; raises 422 invalid_isbn."""
    isbn = terms.normalize_isbn(data.isbn)
    title_terms = terms.words(data.title)
    author_terms = terms.author_terms(data.authors)
    isbn_terms = terms.isbn_terms(isbn)
    return Book(
        title=data.title,
        authors=data.authors,
        isbn=isbn,
        published_date=data.published_date,
        genres=data.genres,
        description=data.description,
        publisher=data.publisher,
        language=data.language,
        page_count=data.page_count,
        total_copies=data.total_copies,
        available_copies=data.total_copies,
        search_terms=terms.search_terms(title_terms, author_terms, isbn_terms),
        title_terms=title_terms,
        author_terms=author_terms,
        isbn_terms=isbn_terms,
        title_key=terms.title_key(data.title),
        genre_keys=terms.genre_keys(data.genres),
        created_at=now,
        updated_at=now,
    )


async def create_book(*, data: BookCreate) -> Book:
    book = new_book(data, now=clock.now())
    try:
        await book.insert()
    except DuplicateKeyError:
        raise _isbn_taken() from None
    return book


async def get_book(*, book_id: PydanticObjectId) -> Book:
    book = await Book.get(book_id)
    if book is None:
        raise not_found("Book")
    return book
