"""Counter drift: `library-api check-consistency` finds it, `--repair` sets it right.

Every counter (a book's loaned, held and available copies, a reader's active loans) is moved
by its own conditional update, beside the loan or reservation write it belongs to. A request
cut off between those writes (a return that closed the loan but never moved the counters, a
borrow whose compensation failed) leaves a counter no later request corrects.

Requests in flight look like drift for a moment too: a borrow counts its copy before it
writes the loan. So a repair only touches what it sees drifted the same way twice, a while
apart, and writes with the counters it saw as the precondition: a request that moved them
meanwhile makes the write miss rather than be undone, and the next round looks again.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from bson import ObjectId

from ..books.models import Book
from ..config import Settings
from ..copies import service as copies
from ..reservations import service as reservations
from ..reservations.models import Reservation, ReservationStatus
from ..users.models import User
from .models import Loan, LoanStatus

# Long enough for any request caught between two of its writes to finish them.
SETTLE_SECONDS = 1.0
ROUNDS = 3
_BOOK_COUNTERS = copies.BOOK_COUNTERS


class _StoredUser(TypedDict, total=False):
    _id: ObjectId
    email: str
    active_loans: int | None


@dataclass(frozen=True)
class Drift:
    """One document whose counters differ from what its loans and reservations say."""

    kind: str  # "book" or "user"
    id: Any
    # The counters as stored (the repair's precondition) and as recomputed.
    stored: dict[str, Any]
    expected: dict[str, int]
    repairable: bool = True
    label: str = field(default="", compare=False)
    problems: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        return f"{self.label}: " + ", ".join(self.problems)


async def _counts(collection: Any, match: dict[str, Any], key: str) -> dict[Any, int]:
    cursor = await collection.aggregate(
        [{"$match": match}, {"$group": {"_id": f"${key}", "n": {"$sum": 1}}}]
    )
    return {row["_id"]: row["n"] async for row in cursor}


def _book_drift(book: copies.BookCounters, loaned: int, held: int) -> Drift | None:
    expected = {"loaned_copies": loaned, "held_copies": held}
    expected["available_copies"] = book["total_copies"] - loaned - held
    stored: dict[str, Any] = {name: book.get(name) for name in _BOOK_COUNTERS}
    problems = [
        f"{name} {stored[name]} (expected {value})"
        for name, value in expected.items()
        if stored[name] != value
    ]
    overdrawn = loaned + held > book["total_copies"]
    if overdrawn:
        problems.append(f"more copies out than total_copies {book['total_copies']}")
    if not problems:
        return None
    return Drift(
        kind="book",
        id=book["_id"],
        stored=stored,
        expected=expected,
        # Fewer copies than are out: only a librarian raising total_copies can settle it.
        repairable=not overdrawn,
        label=f"book {book['_id']} {book['title']!r}",
        problems=tuple(problems),
    )


async def find_drift() -> list[Drift]:
    """Recompute every copy and loan counter from the loans and reservations."""
    loans = Loan.get_pymongo_collection()
    active = {"status": LoanStatus.active.value}
    loaned = await _counts(loans, active, "book_id")
    per_user = await _counts(loans, active, "user_id")
    held = await _counts(
        Reservation.get_pymongo_collection(),
        {"status": ReservationStatus.ready.value},
        "book_id",
    )
    drift: list[Drift] = []
    seen: set[Any] = set()
    projection = dict.fromkeys(("title", *_BOOK_COUNTERS), 1)
    async for raw in Book.get_pymongo_collection().find({}, projection):
        book = cast(copies.BookCounters, raw)
        seen.add(book["_id"])
        found = _book_drift(book, loaned.get(book["_id"], 0), held.get(book["_id"], 0))
        if found is not None:
            drift.append(found)
    for book_id in (set(loaned) | set(held)) - seen:
        drift.append(
            Drift(
                "book",
                book_id,
                {},
                {},
                repairable=False,
                label=f"book {book_id} (missing)",
                problems=("has active loans or ready reservations",),
            )
        )
    users_seen: set[Any] = set()
    async for raw in User.get_pymongo_collection().find({}, {"email": 1, "active_loans": 1}):
        user = cast(_StoredUser, raw)
        users_seen.add(user["_id"])
        expected = per_user.get(user["_id"], 0)
        stored = user.get("active_loans")
        if (stored or 0) != expected:
            drift.append(
                Drift(
                    "user",
                    user["_id"],
                    {"active_loans": stored},
                    {"active_loans": expected},
                    label=f"user {user['_id']} {user['email']}",
                    problems=(f"active_loans {stored or 0} (expected {expected})",),
                )
            )
    for user_id in set(per_user) - users_seen:
        drift.append(
            Drift(
                "user",
                user_id,
                {},
                {},
                repairable=False,
                label=f"user {user_id} (missing)",
                problems=(f"has {per_user[user_id]} active loans",),
            )
        )
    return drift


async def check_consistency() -> list[str]:
    """Every counter that differs from the loans and reservations, described."""
    return [d.describe() for d in await find_drift()]


async def _apply(drift: Drift, settings: Settings) -> bool:
    """Set the recomputed counters if they are still the drifted ones seen; True if set."""
    if drift.kind == "user":
        return await copies.correct_loan_slots(
            user_id=drift.id,
            seen=drift.stored["active_loans"],
            expected=drift.expected["active_loans"],
        )
    if not await copies.correct_book(book_id=drift.id, seen=drift.stored, expected=drift.expected):
        return False
    if drift.expected["available_copies"] > 0:
        # The usual drift is a return cut off before its copy moved on: it must reach the
        # queue, not the shelf, if readers wait for it.
        await reservations.offer_shelf_copies(book_id=drift.id, settings=settings)
    return True


async def repair(*, settings: Settings, progress: Callable[[str], None] | None = None) -> list[str]:
    """Set every drifted counter that stays drifted to its recomputed value; what was set.

    Drift that cannot be repaired (a missing book or user, more copies out than exist) is
    left alone; `check_consistency` still reports it afterwards.
    """
    repaired: list[str] = []
    suspects = [d for d in await find_drift() if d.repairable]
    for _ in range(ROUNDS):
        if not suspects:
            break
        if progress is not None:
            progress(
                f"{len(suspects)} drifted document(s); looking again in {SETTLE_SECONDS:g} s "
                "so that requests in flight can finish"
            )
        await asyncio.sleep(SETTLE_SECONDS)
        left: list[Drift] = []
        for drift in await find_drift():
            if not drift.repairable:
                continue
            if drift in suspects and await _apply(drift, settings):
                repaired.append(drift.describe())
            else:
                left.append(drift)
        suspects = left
    return repaired
