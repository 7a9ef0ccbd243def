"""Library-wide figures, each from one indexed query: no figure reads every loan.

Counts use the indexes their filters start with (loans `by_status_due`, users `role_active`,
reservations `ready_expiry`); the ranking reads the first entries of the books' `top_borrowed`
index, since every borrow adds one to its book's `loans_ever`. Only the catalogue totals read
every book (a sum of `total_copies` has no shortcut), and the books are the smallest of these
collections.
"""

import asyncio
from typing import TypedDict, cast

from bson import ObjectId
from pymongo.asynchronous.cursor import AsyncCursor

from .. import clock
from ..books.models import Book
from ..loans.models import Loan, LoanStatus
from ..reservations.models import Reservation, ReservationStatus
from ..users.models import Role, User
from .schemas import BorrowedBook, LibraryStats

TOP_BORROWED = 10


class _Catalogue(TypedDict):
    """The books counted and their copies summed (one `$group` of every book)."""

    _id: None
    books: int
    copies: int


class _Borrowed(TypedDict):
    """A book read for the ranking (`{"title": 1, "loans_ever": 1}`)."""

    _id: ObjectId
    title: str
    loans_ever: int


async def _catalogue() -> tuple[int, int]:
    cursor = await Book.get_pymongo_collection().aggregate(
        [{"$group": {"_id": None, "books": {"$sum": 1}, "copies": {"$sum": "$total_copies"}}}]
    )
    rows = cast(list[_Catalogue], await cursor.to_list())
    return (int(rows[0]["books"]), int(rows[0]["copies"])) if rows else (0, 0)


async def _top_borrowed() -> list[BorrowedBook]:
    # `loans_ever` counts returned loans too; a deleted book is gone with its counter.
    found: AsyncCursor[_Borrowed] = (
        Book.get_pymongo_collection()
        .find({"loans_ever": {"$gt": 0}}, {"title": 1, "loans_ever": 1})
        .sort([("loans_ever", -1), ("title", 1), ("_id", 1)])
        .limit(TOP_BORROWED)
    )
    return [
        BorrowedBook(book_id=str(raw["_id"]), title=str(raw["title"]), loans=int(raw["loans_ever"]))
        async for raw in found
    ]


async def library_stats() -> LibraryStats:
    active = {"status": LoanStatus.active}
    loans = Loan.get_pymongo_collection()
    (books, copies), members, active_loans, overdue, waiting, top = await asyncio.gather(
        _catalogue(),
        User.get_pymongo_collection().count_documents({"role": Role.member, "is_active": True}),
        loans.count_documents(active),
        loans.count_documents({**active, "due_at": {"$lt": clock.now()}}),
        Reservation.get_pymongo_collection().count_documents({"status": ReservationStatus.waiting}),
        _top_borrowed(),
    )
    return LibraryStats(
        books=books,
        copies=copies,
        members=members,
        active_loans=active_loans,
        overdue_loans=overdue,
        waiting_reservations=waiting,
        top_borrowed=top,
    )
