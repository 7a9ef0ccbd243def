"""The catalogue: creating, finding, changing and removing books."""

import logging
from datetime import UTC, date, datetime, time
from itertools import groupby
from typing import Any

from beanie import PydanticObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from .. import clock
from ..config import Settings
from ..copies import service as copies
from ..errors import AppError, not_found
from ..files.storage import Storage
from ..reservations import service as reservations
from . import terms
from .models import Book
from .schemas import BookCreate, BookSort, BookUpdate, etag_listed, etag_of

logger = logging.getLogger("library_api")

_SORTS: dict[BookSort, list[tuple[str, int]]] = {
    BookSort.title_asc: [("title_key", ASCENDING), ("_id", ASCENDING)],
    BookSort.title_desc: [("title_key", DESCENDING), ("_id", DESCENDING)],
    BookSort.published_asc: [("published_date", ASCENDING), ("_id", ASCENDING)],
    BookSort.published_desc: [("published_date", DESCENDING), ("_id", DESCENDING)],
    BookSort.created_asc: [("created_at", ASCENDING), ("_id", ASCENDING)],
    BookSort.created_desc: [("created_at", DESCENDING), ("_id", DESCENDING)],
}
# A list page never shows the search words: no need to ship them from the database.
_LIST_PROJECTION = {"search_terms": 0, "title_terms": 0, "author_terms": 0, "isbn_terms": 0}
# A search matching at most this many books is answered by one aggregation that reads the
# matches once for the page and the total; a broader one by a sorted find and a count.
SEARCH_MATCHES_AT_ONCE = 1000


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


def creation(book: Book) -> tuple[dict[str, Any], dict[str, Any]]:
    """An upsert that inserts the book unless its ISBN is catalogued, and changes nothing else.

    On MongoDB the same as an insert (one look-up of the unique index); the embedded engine
    does much less work for it than for an `insert` (bench/README.md, 2026-12-05).
    """
    # The stored fields as Beanie would write them (its id and revision left to the database;
    # a date as midnight UTC, since BSON has no date type), through pydantic's public dump.
    fields: dict[str, Any] = book.model_dump(exclude={"id", "revision_id", "isbn"})
    fields["published_date"] = _as_datetime(book.published_date)
    return {"isbn": book.isbn}, {"$setOnInsert": fields}


async def create_book(*, data: BookCreate) -> Book:
    book = new_book(data, now=clock.now())
    query, update = creation(book)
    try:
        result = await Book.get_pymongo_collection().update_one(query, update, upsert=True)
    except DuplicateKeyError:
        # Two creations of one ISBN at once: the unique index refuses the second.
        raise _isbn_taken() from None
    if result.upserted_id is None:
        raise _isbn_taken()
    book.id = result.upserted_id
    return book


async def get_book(*, book_id: PydanticObjectId) -> Book:
    book = await Book.get(book_id)
    if book is None:
        raise not_found("Book")
    return book


def _search_filter(
    *,
    q: str | None,
    title: str | None,
    author: str | None,
    genre: str | None,
    available: bool | None,
) -> dict[str, Any] | None:
    """The filter of a search, or None when a text to match has no word (nothing can match)."""
    clauses: list[dict[str, Any]] = []
    for field, text, isbn in (
        ("search_terms", q, True),
        ("title_terms", title, False),
        ("author_terms", author, False),
    ):
        if text is None or not text.strip():
            continue
        query = terms.query_words(text, isbn=isbn)
        if not query:
            return None
        clauses.extend(terms.prefix_clauses(field, query))
    if genre is not None and genre.strip():
        # Equal to one element: what the bare equality means on an array, which the embedded
        # engine runs without the multikey index; MongoDB reads the same index point either way.
        clauses.append({"genre_keys": {"$elemMatch": {"$eq": terms.genre_key(genre)}}})
    if available is not None:
        clauses.append({"available_copies": {"$gt": 0} if available else {"$lte": 0}})
    return {"$and": clauses} if clauses else {}


async def list_books(
    *,
    q: str | None = None,
    title: str | None = None,
    author: str | None = None,
    genre: str | None = None,
    available: bool | None = None,
    sort: BookSort = BookSort.title_asc,
    skip: int = 0,
    limit: int = 20,
) -> tuple[list[Book], int]:
    """One page of the books matching every given filter, and how many match in all."""
    query = _search_filter(q=q, title=title, author=author, genre=genre, available=available)
    if query is None:
        return [], 0
    if query:
        found = await _page_and_total(query, sort=sort, skip=skip, limit=limit)
        if found is not None:
            return found
    collection = Book.get_pymongo_collection()
    raws = await _by_title(query, sort=sort, skip=skip, limit=limit)
    if raws is None:
        cursor = collection.find(query, _LIST_PROJECTION).sort(_SORTS[sort]).skip(skip)
        raws = await cursor.limit(limit).to_list(length=limit)
    books = [Book.model_validate(raw) for raw in raws]
    if len(books) < limit and (books or skip == 0):
        # A short, non-empty page (or an empty first one) is the last: it tells the total.
        return books, skip + len(books)
    if not query:
        # The collection's own count, from metadata: exact but for an unclean shutdown's
        # drift on MongoDB; count_documents({}) would read every book.
        return books, await collection.estimated_document_count()
    # The `count` command, not count_documents (an aggregation): the embedded engine runs
    # the command's filter in SQL; on MongoDB both read the same index ranges.
    counted = await collection.database.command("count", collection.name, query=query)
    return books, int(counted["n"])


async def _page_and_total(
    query: dict[str, Any], *, sort: BookSort, skip: int, limit: int
) -> tuple[list[Book], int] | None:
    """One page of a search and its total from one pass over the matches; None past the cap.

    The embedded engine scans the catalogue for every filter it runs (a sorted find runs it
    three times, a count once more): here the filter runs once. The `$limit` before the
    `$facet` bounds the work on any engine; a total above the cap says only that there are
    more, and the caller then asks as before.
    """
    window: list[dict[str, Any]] = [{"$sort": dict(_SORTS[sort])}]
    if skip:
        window.append({"$skip": skip})
    window += [{"$limit": limit}, {"$project": _LIST_PROJECTION}]
    pipeline: list[dict[str, Any]] = [
        {"$match": query},
        {"$limit": SEARCH_MATCHES_AT_ONCE + 1},
        {"$facet": {"page": window, "total": [{"$count": "n"}]}},
    ]
    cursor = await Book.get_pymongo_collection().aggregate(pipeline)
    [result] = await cursor.to_list()
    total = int(result["total"][0]["n"]) if result["total"] else 0
    if total > SEARCH_MATCHES_AT_ONCE:
        return None
    return [Book.model_validate(raw) for raw in result["page"]], total


async def _by_title(
    query: dict[str, Any], *, sort: BookSort, skip: int, limit: int
) -> list[dict[str, Any]] | None:
    """A page in title order read with the title alone as the sort key; None when a title
    runs across an edge of the page, where only the id can tell which books are on it.

    The embedded engine checks the matches once more for every sort key, and sorts on two
    keys at greater cost. The neighbours read on each side show that every book with a title
    on the page is on it; ties inside the page are then put in id order here.
    """
    if sort not in (BookSort.title_asc, BookSort.title_desc):
        return None
    (key, direction), _ = _SORTS[sort]
    before = 1 if skip else 0
    found = Book.get_pymongo_collection().find(query, _LIST_PROJECTION).sort([(key, direction)])
    raws = await found.skip(skip - before).limit(limit + before + 1).to_list()
    page = raws[before : before + limit]
    if page and before and raws[0].get(key) == page[0].get(key):
        return None
    if len(raws) > before + limit and raws[before + limit].get(key) == page[-1].get(key):
        return None
    ordered: list[dict[str, Any]] = []
    for _, tied in groupby(page, key=lambda raw: raw.get(key)):
        ordered += sorted(tied, key=lambda raw: raw["_id"], reverse=direction == DESCENDING)
    return ordered


def _as_datetime(value: date | None) -> datetime | None:
    # BSON has no date type: stored, as Beanie does it, as midnight UTC.
    return None if value is None else datetime.combine(value, time(), tzinfo=UTC)


def _changes(data: BookUpdate) -> dict[str, Any]:
    given = data.model_fields_set
    changes: dict[str, Any] = {}
    if "title" in given and data.title is not None:
        changes["title"] = data.title
        changes["title_terms"] = terms.words(data.title)
        changes["title_key"] = terms.title_key(data.title)
    if "authors" in given and data.authors is not None:
        changes["authors"] = data.authors
        changes["author_terms"] = terms.author_terms(data.authors)
    if "isbn" in given and data.isbn is not None:
        changes["isbn"] = terms.normalize_isbn(data.isbn)
        changes["isbn_terms"] = terms.isbn_terms(changes["isbn"])
    if "genres" in given and data.genres is not None:
        changes["genres"] = data.genres
        changes["genre_keys"] = terms.genre_keys(data.genres)
    if "published_date" in given:
        changes["published_date"] = _as_datetime(data.published_date)
    for field in ("description", "publisher", "language", "page_count"):
        if field in given:
            changes[field] = getattr(data, field)
    return changes


# What any change to a book moves: edits and files set `updated_at`, copies move the counters.
# Pinned in the write's own filter, an If-Match leaves no window between check and write.
_VERSION = ("updated_at", "total_copies", "available_copies", "held_copies", "loaned_copies")


def _stale() -> AppError:
    return AppError(
        412, "precondition_failed", "The book has changed since the ETag given in If-Match"
    )


async def _pin(book_id: PydanticObjectId, if_match: str | None) -> dict[str, Any]:
    """Filter clauses holding the book to the version `if_match` names (412 if it is not)."""
    if if_match is None:
        return {}
    raw = await Book.get_pymongo_collection().find_one({"_id": book_id})
    if raw is None:
        raise not_found("Book")
    if not etag_listed(if_match, etag_of(Book.model_validate(raw)), weak=False):
        raise _stale()
    return {field: raw.get(field) for field in _VERSION}


async def _moved(book_id: PydanticObjectId, pin: dict[str, Any]) -> bool:
    """After a conditional write missed: whether the pinned version was left behind."""
    if not pin:
        return False
    now = await Book.get_pymongo_collection().find_one({"_id": book_id}, dict.fromkeys(_VERSION, 1))
    return now is not None and any(now.get(field) != value for field, value in pin.items())


async def update_book(
    *,
    book_id: PydanticObjectId,
    data: BookUpdate,
    settings: Settings,
    if_match: str | None = None,
) -> Book:
    """Apply a PATCH in one conditional update; lowering the copies below those out is 409.

    Copies a raised `total_copies` frees while readers wait never reach the shelf, where a
    reader outside the queue could borrow them: the same update counts them as held (the
    reservations hand-over protocol), then each is promised to the oldest waiting reader.
    """
    pin = await _pin(book_id, if_match)
    changes = _changes(data)
    total = data.total_copies if "total_copies" in data.model_fields_set else None
    if not changes and total is None:
        return await get_book(book_id=book_id)
    changes["updated_at"] = clock.now()
    # A pipeline update, so the counters and search words are derived from the stored
    # document in the same atomic step; $literal keeps a "$..." title from reading a field.
    stages: list[dict[str, Any]] = [{"$set": {k: {"$literal": v} for k, v in changes.items()}}]
    query: dict[str, Any] = {"_id": book_id, **pin}
    restock = None
    if total is not None:
        restock = copies.Restock(total=total)
        query.update(restock.precondition())
        stages.append(restock.stage())
    if changes.keys() & {"title_terms", "author_terms", "isbn_terms"}:
        parts = [{"$ifNull": [f"${f}", []]} for f in ("title_terms", "author_terms", "isbn_terms")]
        stages.append({"$set": {"search_terms": {"$setUnion": parts}}})
    collection = Book.get_pymongo_collection()
    # With a change of stock, the document before the update tells how many copies it held.
    returned = ReturnDocument.BEFORE if restock is not None else ReturnDocument.AFTER
    try:
        raw = await collection.find_one_and_update(query, stages, return_document=returned)
    except DuplicateKeyError:
        raise _isbn_taken() from None
    if raw is None:
        if await _moved(book_id, pin):
            raise _stale()
        if await collection.count_documents({"_id": book_id}, limit=1):
            raise AppError(
                409,
                "copies_in_use",
                "total_copies cannot go below the copies on loan or held for reservations",
            )
        raise not_found("Book")
    if restock is not None:
        for _ in range(restock.held_for_queue(raw)):
            await reservations.place_held_copy(book_id=book_id, settings=settings)
        return await get_book(book_id=book_id)
    book: Book = Book.model_validate(raw)
    return book


async def delete_book(
    *, book_id: PydanticObjectId, storage: Storage, if_match: str | None = None
) -> None:
    """Remove a book no one has on loan, its stored files and its open reservations."""
    pin = await _pin(book_id, if_match)
    collection = Book.get_pymongo_collection()
    raw = await collection.find_one_and_delete(
        {"_id": book_id, "loaned_copies": {"$lte": 0}, **pin}
    )
    if raw is None:
        if await _moved(book_id, pin):
            raise _stale()
        if await collection.count_documents({"_id": book_id}, limit=1):
            raise AppError(409, "book_on_loan", "Copies of this book are on loan")
        raise not_found("Book")
    book: Book = Book.model_validate(raw)
    await reservations.cancel_for_book(book_id=book_id)
    for stored in (book.cover, book.document):
        if stored is None:
            continue
        try:
            await storage.delete(stored.key)
        except Exception:
            # The book is gone already; a file left behind must not turn that into a 500.
            logger.exception("could not remove file %s of deleted book %s", stored.key, book_id)
