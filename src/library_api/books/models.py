from datetime import date, datetime

from beanie import Document
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, IndexModel


class StoredFile(BaseModel):
    """A cover or document kept by the storage backend under a generated key."""

    key: str
    filename: str
    size: int
    content_type: str
    sha256: str
    uploaded_at: datetime


class Book(Document):
    title: str
    authors: list[str]
    isbn: str  # ISBN-13, digits only
    published_date: date | None = None
    genres: list[str] = []
    description: str | None = None
    publisher: str | None = None
    language: str | None = None
    page_count: int | None = None

    # Copy counters, moved only by single-document atomic updates:
    # available_copies == total_copies - loaned_copies - held_copies, always.
    total_copies: int = 1
    available_copies: int = 1
    loaned_copies: int = 0
    held_copies: int = 0
    loans_ever: int = 0
    # Never fewer than the readers waiting (copies/service.py): where a returned copy goes.
    waiting_readers: int = 0

    # Lower-cased, accent-free words of the title, authors and ISBN, for prefix search
    # (books/terms.py). search_terms is the union of the three others, so `q` needs one index
    # and a PATCH of one field can rebuild it in the same update from the arrays it keeps.
    search_terms: list[str] = []
    title_terms: list[str] = []
    author_terms: list[str] = []
    isbn_terms: list[str] = []
    title_key: str = ""
    genre_keys: list[str] = []

    cover: StoredFile | None = None
    document: StoredFile | None = None

    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "books"
        indexes = [
            IndexModel([("isbn", ASCENDING)], unique=True, name="isbn_unique"),
            IndexModel([("search_terms", ASCENDING)], name="search_terms"),
            IndexModel([("title_terms", ASCENDING)], name="title_terms"),
            IndexModel([("author_terms", ASCENDING)], name="author_terms"),
            IndexModel([("title_key", ASCENDING), ("_id", ASCENDING)], name="by_title"),
            IndexModel([("published_date", ASCENDING), ("_id", ASCENDING)], name="by_published"),
            IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="by_created"),
            IndexModel([("genre_keys", ASCENDING)], name="genres"),
            # The stats ranking's exact order: its first ten entries are the answer.
            IndexModel(
                [("loans_ever", DESCENDING), ("title", ASCENDING), ("_id", ASCENDING)],
                name="top_borrowed",
            ),
        ]


DOCUMENTS = [Book]

# The search indexes over arrays, left out of the embedded database (db.py): mongoeco runs
# each `$elemMatch` over the stored arrays in SQL and never reads these indexes, while every
# write of a book (a borrow, a return, each imported row) rewrites their entries. MongoDB
# reads them for every search.
MONGODB_ONLY_INDEXES = {"books": ("search_terms", "title_terms", "author_terms", "genres")}
