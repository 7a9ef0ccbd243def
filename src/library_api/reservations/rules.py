"""When a reservation is refused, where a lapsed hold's copy goes, who has a copy waiting:
the queue's rules, stated once.

Pure (no database): reservations/service.py applies them as it reserves and expires holds
(the clauses below are its queries' conditions), and loans/availability.py to a snapshot of
a book's open holds, to tell a reader what a borrow or a reservation would meet now without
changing anything (`settle` plays the expiry the next borrow or reservation would run).
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId

from ..config import Settings
from ..errors import AppError
from .models import ReservationStatus

WAITING = ReservationStatus.waiting.value
READY = ReservationStatus.ready.value

# Every 409 of a reservation, in the order `reserve` meets them: the first that applies is
# the answer.
RESERVE_REFUSALS: dict[str, str] = {
    "copies_available": "A copy is on the shelf: borrow it instead",
    "already_borrowed": "You have this book on loan",
    "already_reserved": "You already have a reservation for this book",
}


def reserve_blockers(*, on_shelf: int, has_loan: bool, has_open: bool) -> list[str]:
    """Every code a reservation would be refused with, in precedence order."""
    applies = {
        "copies_available": on_shelf > 0,
        "already_borrowed": has_loan,
        "already_reserved": has_open,
    }
    return [code for code in RESERVE_REFUSALS if applies[code]]


def refused(code: str) -> AppError:
    return AppError(409, code, RESERVE_REFUSALS[code])


def lapsed_clause(now: datetime) -> dict[str, Any]:
    """Ready holds whose pickup time has passed: expiry moves their copies on."""
    return {"status": READY, "ready_until": {"$lt": now}}


def claimable_clause(now: datetime) -> dict[str, Any]:
    """Ready holds still within their pickup time: their reader may borrow the copy."""
    return {"status": READY, "ready_until": {"$gte": now}}


@dataclass(frozen=True)
class Hold:
    """An open (waiting or ready) reservation of a book, as the queue sees it."""

    id: PydanticObjectId
    user_id: PydanticObjectId
    status: str
    ready_until: datetime | None

    def lapsed(self, now: datetime) -> bool:
        """`lapsed_clause` for one hold."""
        return self.status == READY and self.ready_until is not None and self.ready_until < now


@dataclass(frozen=True)
class Queue:
    """A book's shelf and open holds once its lapsed holds are expired (`settle`)."""

    on_shelf: int
    ready: tuple[Hold, ...]
    waiting: tuple[Hold, ...]  # oldest first

    def open_hold(self, user_id: PydanticObjectId) -> Hold | None:
        return next((h for h in (*self.ready, *self.waiting) if h.user_id == user_id), None)

    def position(self, user_id: PydanticObjectId) -> int | None:
        """The reader's 1-based place among the waiting, as `positions` numbers them."""
        found = [i for i, h in enumerate(self.waiting, 1) if h.user_id == user_id]
        return found[0] if found else None

    def copy_for(self, user_id: PydanticObjectId) -> bool:
        """Whether a borrow by the reader finds a copy: one on the shelf, or one held for
        this reader (a copy held for someone else is not on the shelf)."""
        return self.on_shelf > 0 or any(h.user_id == user_id for h in self.ready)


def settle(
    *,
    on_shelf: int,
    holds: list[Hold],
    borrowers: set[PydanticObjectId],
    now: datetime,
    settings: Settings,
) -> Queue:
    """The queue as expiring its lapsed holds would leave it (service `_expire`).

    `holds` are the book's open reservations in queue order; `borrowers` the readers with
    the book on loan. Each lapsed hold's copy goes to the oldest waiting reader (one who
    has the book on loan is passed over, their reservation having served its purpose, as
    `place_held_copy` does), or back on the shelf when no one waits.
    """
    waiting = [h for h in holds if h.status == WAITING]
    ready = [h for h in holds if h.status == READY and not h.lapsed(now)]
    until = now + timedelta(days=settings.hold_pickup_days)
    for _ in range(sum(h.lapsed(now) for h in holds)):
        while waiting and waiting[0].user_id in borrowers:
            waiting.pop(0)
        if waiting:
            ready.append(replace(waiting.pop(0), status=READY, ready_until=until))
        else:
            on_shelf += 1
    return Queue(on_shelf=max(on_shelf, 0), ready=tuple(ready), waiting=tuple(waiting))
