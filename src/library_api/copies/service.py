"""Copy state: the one module that writes a book's copy counters (copies/slots.py does the
same for a reader's loan slots).

A book's copies are in one of three places, each counted on the book:
`available_copies` (on the shelf), `held_copies` (set aside for a reservation) and
`loaned_copies` (out on loan), with `available + held + loaned == total_copies`.

The book also keeps `waiting_readers`, never fewer than the readers waiting in its queue: a
reader joins (+1) before the reservation is written and leaves (-1) after it stops waiting,
so the count may run ahead for a moment, never behind. A returned copy goes to the hold shelf
only when it is above zero, in the same update, so a return into an empty queue costs no
look at the reservations; a reservation written after that update finds the copy on the shelf.
A book from before the count was kept has none (readers may be waiting) until a reader joins
its queue or a copy of it is shelved with nobody waiting (`join_queue`, `start_empty_queue`):
no start-up pass over the catalogue, which on the embedded engine costs a scan per book.

There are no transactions (the embedded server runs one at a time and fails every other
session meanwhile), so every transition below is one conditional update on one document.
Its precondition is the same for every copy move, stated once in `_has_one`: the place the copy
leaves has one. A transition that misses changes nothing and says so (False or None); the
callers decide what a miss means. Each transition has an inverse, and the undo steps of a
borrow that fails part-way are those inverses.
"""

from typing import Any, Literal, NotRequired, TypedDict, cast

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from ..books.models import Book
from ..loans.models import Loan, LoanStatus
from ..reservations.models import Reservation, ReservationStatus

Place = Literal["available_copies", "held_copies", "loaned_copies"]
SHELF: Place = "available_copies"
HELD: Place = "held_copies"
LOANED: Place = "loaned_copies"
# Every borrow adds one to the book's `loans_ever` (the stats ranking); an undone one takes it off.
BORROWS = "loans_ever"
# Never fewer than the readers waiting for the book (see above).
WAITING = "waiting_readers"
BOOK_COUNTERS = ("total_copies", SHELF, LOANED, HELD, WAITING)


class Lent(TypedDict):
    """What a borrow needs of the book whose copy it took: the title for the loan, and
    whether copies are held (the reader's own ready hold may be among them)."""

    _id: ObjectId
    title: str
    held_copies: int


class BookCounters(TypedDict):
    _id: ObjectId
    title: str
    total_copies: int
    available_copies: int
    loaned_copies: int
    held_copies: int
    waiting_readers: NotRequired[int]  # missing on a book from before it was kept


class _Queue(TypedDict):
    _id: ObjectId
    available_copies: int


_LENT = {"title": 1, HELD: 1}


async def _move(
    book_id: PydanticObjectId, source: Place, target: Place, *, borrows: int = 0
) -> bool:
    """Move one copy from `source` to `target`, if `source` has one."""
    moved = await Book.get_pymongo_collection().update_one(
        _has_one(book_id, source), _inc(source, target, borrows)
    )
    return moved.modified_count == 1


def _has_one(book_id: PydanticObjectId, source: Place) -> dict[str, Any]:
    return {"_id": book_id, source: {"$gt": 0}}


def _inc(source: Place, target: Place, borrows: int) -> dict[str, Any]:
    change: dict[str, int] = {source: -1, target: 1}
    if borrows:
        change[BORROWS] = borrows
    return {"$inc": change}


async def _lend(book_id: PydanticObjectId, source: Place) -> Lent | None:
    raw = await Book.get_pymongo_collection().find_one_and_update(
        _has_one(book_id, source),
        _inc(source, LOANED, 1),
        projection=_LENT,
        return_document=ReturnDocument.AFTER,
    )
    return cast(Lent | None, raw)


# --- borrowing and returning --------------------------------------------------------------


async def take_shelf_copy(*, book_id: PydanticObjectId) -> Lent | None:
    """Lend a copy from the shelf; None when none is there (or no such book)."""
    return await _lend(book_id, SHELF)


async def untake_shelf_copy(*, book_id: PydanticObjectId) -> Place | None:
    """Inverse of `take_shelf_copy`, for a borrow that failed after it: the copy goes back
    as a returned one does (`give_back`), since a reader may have joined the queue
    meanwhile, seeing no copy on the shelf."""
    return await _queue_or_shelf(book_id, LOANED, borrows=-1)


async def take_held_copy(*, book_id: PydanticObjectId) -> Lent | None:
    """Lend a held copy to the reader whose ready hold was just claimed for it."""
    return await _lend(book_id, HELD)


async def untake_held_copy(*, book_id: PydanticObjectId) -> bool:
    """Inverse of `take_held_copy`: the copy is held again for the unclaimed hold."""
    return await _move(book_id, LOANED, HELD, borrows=-1)


async def give_back(*, book_id: PydanticObjectId) -> Place | None:
    """A returned copy goes to the hold shelf if readers may be waiting (to be promised to
    the first of them: `HELD`), else to the shelf (`SHELF`); None when no copy was out."""
    return await _queue_or_shelf(book_id, LOANED)


async def release_held_copy(*, book_id: PydanticObjectId) -> Place | None:
    """A held copy its reader no longer needs goes to the shelf when no reader is counted as
    waiting (`SHELF`); else it stays held, to be promised to the first of them (`HELD`).
    None when no copy is held."""
    return await _queue_or_shelf(book_id, HELD)


async def _queue_or_shelf(
    book_id: PydanticObjectId, source: Place, *, borrows: int = 0
) -> Place | None:
    """One copy leaves `source` for the hold shelf or the shelf, decided by `waiting_readers`
    in the same update. Where the count is missing (a book from before it was kept) readers
    may be waiting."""
    queued = {"$gt": [{"$ifNull": [f"${WAITING}", 1]}, 0]}
    deltas: dict[str, list[Any]] = {
        HELD: [{"$cond": [queued, 1, 0]}],
        SHELF: [{"$cond": [queued, 0, 1]}],
    }
    deltas.setdefault(source, []).append(-1)
    if borrows:
        deltas[BORROWS] = [borrows]
    raw = await Book.get_pymongo_collection().find_one_and_update(
        _has_one(book_id, source),
        [{"$set": {name: {"$add": [f"${name}", *d]} for name, d in deltas.items()}}],
        projection={WAITING: 1},
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        return None
    return HELD if raw.get(WAITING, 1) > 0 else SHELF


async def has_on_loan(*, user_id: PydanticObjectId, book_id: PydanticObjectId) -> bool:
    """Whether one of the book's loaned copies is out with this reader (an active loan)."""
    found = await Loan.get_pymongo_collection().find_one(
        {"user_id": user_id, "book_id": book_id, "status": LoanStatus.active.value}, {"_id": 1}
    )
    return found is not None


# --- holding for readers ----------------------------------------------------------------------


async def hold_shelf_copy(*, book_id: PydanticObjectId) -> bool:
    """Set a shelf copy aside for the queue; False when a borrower took it first."""
    return await _move(book_id, SHELF, HELD)


async def shelve_held_copy(*, book_id: PydanticObjectId) -> bool:
    """Inverse of `hold_shelf_copy`: a held copy no reader is promised goes to the shelf."""
    return await _move(book_id, HELD, SHELF)


async def shelf_copies(*, book_id: PydanticObjectId) -> int | None:
    """Copies on the shelf; None when there is no such book."""
    raw = await Book.get_pymongo_collection().find_one({"_id": book_id}, {SHELF: 1})
    return None if raw is None else int(raw[SHELF])


async def join_queue(*, book_id: PydanticObjectId) -> int | None:
    """A reader is about to wait for the book (before the reservation is written): counted
    in `waiting_readers`. The copies on the shelf; None when there is no such book.

    A book from before the count was kept starts it here, from its waiting reservations
    (one look, once per book): a count started by a racing request makes this one miss, and
    it adds to that count instead.
    """
    books = Book.get_pymongo_collection()
    while True:
        raw = await books.find_one_and_update(
            {"_id": book_id, WAITING: {"$exists": True}},
            {"$inc": {WAITING: 1}},
            projection={SHELF: 1},
        )
        if raw is None:
            waiting = await Reservation.get_pymongo_collection().count_documents(
                {"book_id": book_id, "status": ReservationStatus.waiting.value}
            )
            raw = await books.find_one_and_update(
                {"_id": book_id, WAITING: {"$exists": False}},
                {"$set": {WAITING: waiting + 1}},
                projection={SHELF: 1},
            )
        if raw is not None:
            return cast(_Queue, raw)["available_copies"]
        if await books.find_one({"_id": book_id}, {"_id": 1}) is None:
            return None


async def leave_queue(*, book_id: PydanticObjectId) -> bool:
    """Inverse of `join_queue`: after a reservation stopped waiting (its copy promised, or
    cancelled), or was never written. A count not started yet stays so."""
    left = await Book.get_pymongo_collection().update_one(
        {"_id": book_id, WAITING: {"$gt": 0}}, {"$inc": {WAITING: -1}}
    )
    return left.modified_count == 1


async def start_empty_queue(*, book_id: PydanticObjectId) -> None:
    """A book from before `waiting_readers` was kept, found with no reader waiting after a
    copy was shelved (`reservations._shelve`), starts its count at 0 (a reader joining
    meanwhile starts it first, or adds to this one: `join_queue`)."""
    await Book.get_pymongo_collection().update_one(
        {"_id": book_id, WAITING: {"$exists": False}}, {"$set": {WAITING: 0}}
    )


async def held_copies(*, book_id: PydanticObjectId) -> int | None:
    """Copies held for reservations; None when there is no such book."""
    raw = await Book.get_pymongo_collection().find_one({"_id": book_id}, {HELD: 1})
    return None if raw is None else int(raw[HELD])


# --- a change of stock ---------------------------------------------------------------------


class Restock:
    """The copy part of a PATCH setting `total_copies`, in the book's own pipeline update
    (so the change and the book's other fields are one atomic write).

    Copies it frees while readers are counted as waiting (`waiting_readers`, read by the
    update itself, so a reader who joins just before is counted) are held in the same update
    (never reaching the shelf, where a reader outside the queue could take them); the caller
    then promises each to the oldest waiting reader (or shelves it, if fewer wait).
    """

    def __init__(self, *, total: int) -> None:
        self.total = total

    def precondition(self) -> dict[str, Any]:
        """No fewer copies than are out (on loan or held)."""
        return {"$expr": {"$lte": [self._out(), self.total]}}

    def stage(self) -> dict[str, Any]:
        free = {"$subtract": [{"$literal": self.total}, self._out()]}
        # Not counted yet (a book from before the count): any reader may be waiting.
        queued = {"$max": [0, {"$min": [{"$ifNull": [f"${WAITING}", free]}, free]}]}
        return {
            "$set": {
                "total_copies": {"$literal": self.total},
                SHELF: {"$subtract": [free, queued]},
                HELD: {"$add": [f"${HELD}", queued]},
            }
        }

    def held_for_queue(self, before: dict[str, Any]) -> int:
        """How many copies the update held for the queue, from the book before it."""
        counters = cast(BookCounters, before)
        free = self.total - counters[LOANED] - counters[HELD]
        return max(0, min(counters.get("waiting_readers", free), free))

    @staticmethod
    def _out() -> dict[str, Any]:
        return {"$add": [f"${LOANED}", f"${HELD}"]}


# --- repair -----------------------------------------------------------------------------------


async def correct_book(*, book_id: Any, seen: dict[str, Any], expected: dict[str, int]) -> bool:
    """Set a drifted book's counters to `expected` if they still hold the values `seen`.

    For the consistency checker: a request that moved them meanwhile makes this miss rather
    than be undone. A stored None in `seen` also matches a missing field, as it was read.
    """
    done = await Book.get_pymongo_collection().update_one(
        {"_id": book_id, **seen}, {"$set": expected}
    )
    return done.modified_count == 1
