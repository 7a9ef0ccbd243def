"""Counter drift: `library-api check-consistency` finds it, `--repair` sets it right.

Every counter (a book's loaned, held and available copies and its count of waiting readers, a
reader's active loans) is moved by its own conditional update, beside the loan or reservation
write it belongs to. A request cut off between those writes (a return that closed the loan but
never moved the counters, a borrow whose compensation failed) leaves a counter no later
request corrects.

Requests in flight look like drift for a moment too: a borrow counts its copy before it
writes the loan. So a repair only touches what it sees drifted the same way twice, at least
`settle_time` apart (by `clock`), and writes with the counters it saw as the precondition: a
request that moved them meanwhile makes the write miss rather than be undone, and the next
look tries again. A `Watch` remembers what earlier looks saw: the command line looks a few
times, `settle_time` apart; the background job (notifications/scheduler.py) looks every
CONSISTENCY_INTERVAL_SECONDS, and once more `settle_time` after a look that found new drift.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from bson import ObjectId

from .. import clock
from ..books.models import Book
from ..config import Settings
from ..copies import service as copies
from ..copies import slots
from ..fines import service as fines
from ..reservations import service as reservations
from ..reservations.models import Reservation, ReservationStatus
from ..users.models import User
from .models import Loan, LoanStatus

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


def _book_drift(book: copies.BookCounters, loaned: int, held: int, waiting: int) -> Drift | None:
    expected = {"loaned_copies": loaned, "held_copies": held, copies.WAITING: waiting}
    expected["available_copies"] = book["total_copies"] - loaned - held
    if book.get(copies.WAITING) is None:
        # Not counted yet (a book from before the count): unknown, not wrong; it starts
        # with the book's next reservation (copies.join_queue).
        del expected[copies.WAITING]
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
    holds = Reservation.get_pymongo_collection()
    held = await _counts(holds, {"status": ReservationStatus.ready.value}, "book_id")
    waiting = await _counts(holds, {"status": ReservationStatus.waiting.value}, "book_id")
    drift: list[Drift] = []
    seen: set[Any] = set()
    projection = dict.fromkeys(("title", *_BOOK_COUNTERS), 1)
    async for raw in Book.get_pymongo_collection().find({}, projection):
        book = cast(copies.BookCounters, raw)
        seen.add(book["_id"])
        found = _book_drift(
            book,
            loaned.get(book["_id"], 0),
            held.get(book["_id"], 0),
            waiting.get(book["_id"], 0),
        )
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


async def check_consistency(*, settings: Settings) -> list[str]:
    """Every counter that differs from the loans and reservations, and every fine that does
    not add up or is missing, described."""
    return [d.describe() for d in await find_drift()] + await fines.drift(settings=settings)


async def _apply(drift: Drift, settings: Settings) -> bool:
    """Set the recomputed counters if they are still the drifted ones seen; True if set."""
    if drift.kind == "user":
        return await slots.correct_loan_slots(
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


def settle_time(settings: Settings) -> timedelta:
    """Long enough for a request caught between two of its writes to finish them: each step
    is bounded by MONGODB_TIMEOUT_SECONDS, and the longest gap between two writes of one
    request (a borrow's slot and its loan, a reader joining a queue and the reservation) is
    under two of them; at least SETTLE_SECONDS."""
    return timedelta(seconds=max(SETTLE_SECONDS, 2 * settings.mongodb_timeout_seconds))


class Watch:
    """Drift seen by earlier looks; a later look repairs what it sees drifted the same way.

    One per process and job: another instance that takes the job over starts with an empty
    watch, and needs one look more.
    """

    def __init__(self, settings: Settings) -> None:
        self.settle = settle_time(settings)
        # (kind, id) -> (drift as seen, when it had been seen at the latest)
        self._suspects: dict[tuple[str, Any], tuple[Drift, datetime]] = {}
        self._reported: set[str] = set()

    @property
    def pending(self) -> int:
        """How many drifted documents wait for a later look to confirm them."""
        return len(self._suspects)

    def settles_in(self) -> float:
        """Seconds until every suspect may be confirmed by a look."""
        if not self._suspects:
            return 0.0
        latest = max(seen for _, seen in self._suspects.values())
        return max(0.0, (latest + self.settle - clock.now()).total_seconds())

    def forget(self) -> None:
        self._suspects.clear()

    async def look(self, *, settings: Settings) -> tuple[list[str], list[str]]:
        """Recompute once; (repairs made, drift newly found that no repair can settle).

        Repaired: what an earlier look, `settle` or more before, saw drifted the same
        way. Each unrepairable drift is reported by the first look that finds it, not again.
        """
        began = clock.now()
        found = await find_drift()
        seen_at = clock.now()
        repaired: list[str] = []
        suspects: dict[tuple[str, Any], tuple[Drift, datetime]] = {}
        unrepairable = {d.describe() for d in found if not d.repairable}
        fresh = sorted(unrepairable - self._reported)
        self._reported = unrepairable
        for drift in found:
            if not drift.repairable:
                continue
            key = (drift.kind, drift.id)
            earlier = self._suspects.get(key)
            if earlier is None or earlier[0] != drift:
                suspects[key] = (drift, seen_at)
            elif began - earlier[1] < self.settle:
                suspects[key] = earlier
            elif await _apply(drift, settings):
                repaired.append(drift.describe())
            else:
                # Moved meanwhile: whatever it is now, a later look judges it afresh.
                suspects[key] = (drift, seen_at)
        self._suspects = suspects
        return repaired, fresh


async def repair(*, settings: Settings, progress: Callable[[str], None] | None = None) -> list[str]:
    """Set every drifted counter that stays drifted to its recomputed value; what was set.

    Drift that cannot be repaired (a missing book or user, more copies out than exist) is
    left alone; `check_consistency` still reports it afterwards.
    """
    watch = Watch(settings)
    repaired, _ = await watch.look(settings=settings)
    for _ in range(ROUNDS):
        if not watch.pending:
            break
        if progress is not None:
            progress(
                f"{watch.pending} drifted document(s); looking again in "
                f"{watch.settle.total_seconds():g} s so that requests in flight can finish"
            )
        # A little past it: a timer may fire a hair early, and `clock` keeps milliseconds.
        await asyncio.sleep(watch.settles_in() + 0.01)
        done, _ = await watch.look(settings=settings)
        repaired.extend(done)
    return repaired + await fines.repair_missing(settings=settings) + await fines.repair_dues()
