"""Library-wide figures, each computed by the database with an aggregation pipeline."""

import asyncio
from typing import Any

from beanie import Document

from .. import clock
from ..books.models import Book
from ..loans.models import Loan, LoanStatus
from ..reservations.models import Reservation, ReservationStatus
from ..users.models import Role, User
from .schemas import BorrowedBook, LibraryStats

TOP_BORROWED = 10


async def _aggregate(model: type[Document], pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cursor = await model.get_pymongo_collection().aggregate(pipeline)
    found: list[dict[str, Any]] = await cursor.to_list()
    return found


def _count(rows: list[dict[str, Any]]) -> int:
    # `$count` yields no document at all when nothing matched.
    return int(rows[0]["n"]) if rows else 0


async def _count_matching(model: type[Document], match: dict[str, Any]) -> int:
    return _count(await _aggregate(model, [{"$match": match}, {"$count": "n"}]))


async def _catalogue() -> tuple[int, int]:
    rows = await _aggregate(
        Book,
        [{"$group": {"_id": None, "books": {"$sum": 1}, "copies": {"$sum": "$total_copies"}}}],
    )
    return (int(rows[0]["books"]), int(rows[0]["copies"])) if rows else (0, 0)


async def _loans() -> tuple[int, int, list[BorrowedBook]]:
    active = {"status": LoanStatus.active}
    rows = await _aggregate(
        Loan,
        [
            {
                "$facet": {
                    "active": [{"$match": active}, {"$count": "n"}],
                    "overdue": [
                        {"$match": {**active, "due_at": {"$lt": clock.now()}}},
                        {"$count": "n"},
                    ],
                    "top": [
                        {"$group": {"_id": "$book_id", "loans": {"$sum": 1}}},
                        # Titles from the catalogue; a deleted book is no longer listed.
                        {
                            "$lookup": {
                                "from": Book.get_collection_name(),
                                "localField": "_id",
                                "foreignField": "_id",
                                "as": "book",
                            }
                        },
                        {"$match": {"book": {"$ne": []}}},
                        {
                            "$project": {
                                "loans": 1,
                                "title": {"$arrayElemAt": ["$book.title", 0]},
                            }
                        },
                        {"$sort": {"loans": -1, "title": 1, "_id": 1}},
                        {"$limit": TOP_BORROWED},
                    ],
                }
            }
        ],
    )
    facets: dict[str, Any] = rows[0] if rows else {}
    top = [
        BorrowedBook(book_id=str(row["_id"]), title=str(row["title"]), loans=int(row["loans"]))
        for row in facets.get("top", [])
    ]
    return _count(facets.get("active", [])), _count(facets.get("overdue", [])), top


async def library_stats() -> LibraryStats:
    (books, copies), members, (active, overdue, top), waiting = await asyncio.gather(
        _catalogue(),
        _count_matching(User, {"role": Role.member, "is_active": True}),
        _loans(),
        _count_matching(Reservation, {"status": ReservationStatus.waiting}),
    )
    return LibraryStats(
        books=books,
        copies=copies,
        members=members,
        active_loans=active,
        overdue_loans=overdue,
        waiting_reservations=waiting,
        top_borrowed=top,
    )
