"""The scan's notifications: due soon, overdue, and ready holds a hand-over did not announce.

Each is created at most once (the unique key), however often or wherever the scan runs. The
periodic job around it (expiring lapsed holds first, mailing after) is in scheduler.py.
"""

from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict

from bson import ObjectId
from pymongo.asynchronous.cursor import AsyncCursor

from .. import clock
from ..books.models import Book
from ..loans.models import Loan, LoanStatus
from ..reservations.models import Reservation, ReservationStatus
from . import creation
from .models import Notification, NotificationKind, TitleRow

DUE_SOON_WINDOW = timedelta(hours=24)
_BATCH = 200


class _DueLoan(TypedDict):
    """An active loan read for its notice (`{"user_id", "book_title", "due_at"}`)."""

    _id: ObjectId
    user_id: ObjectId
    book_title: str
    due_at: datetime


class _ReadyHold(TypedDict):
    """A ready reservation read for its notice (`{"user_id", "book_id", "ready_until"}`)."""

    _id: ObjectId
    user_id: ObjectId
    book_id: ObjectId
    ready_until: NotRequired[datetime | None]


class _KeyRow(TypedDict):
    """A notification read for its key (`{"key": 1}`)."""

    _id: ObjectId
    key: str


async def _existing_keys(keys: list[str]) -> set[str]:
    notifications = Notification.get_pymongo_collection()
    found: AsyncCursor[_KeyRow] = notifications.find({"key": {"$in": keys}}, {"key": 1})
    return {raw["key"] async for raw in found}


async def _notify_loans(*, kind: NotificationKind, query: dict[str, Any]) -> int:
    describe = (
        creation.due_soon_message if kind is NotificationKind.due_soon else creation.overdue_message
    )
    fields = {"user_id": 1, "book_title": 1, "due_at": 1}
    loans: AsyncCursor[_DueLoan] = Loan.get_pymongo_collection().find(query, fields).sort("_id", 1)
    created = 0
    batch: list[_DueLoan] = []

    async def flush() -> int:
        # Read first, insert only what is missing: a rescan costs reads, not failed writes.
        keys = {Notification.key_for(kind, raw["_id"]): raw for raw in batch}
        done = await _existing_keys(list(keys))
        count = 0
        for key, raw in keys.items():
            if key not in done and await creation.create(
                kind=kind,
                user_id=raw["user_id"],
                loan_id=raw["_id"],
                message=describe(raw["book_title"], raw["due_at"]),
            ):
                count += 1
        batch.clear()
        return count

    async for raw in loans:
        batch.append(raw)
        if len(batch) >= _BATCH:
            created += await flush()
    if batch:
        created += await flush()
    return created


async def _notify_ready_holds() -> int:
    """The safety net for hand-overs whose `announce_ready` did not get through."""
    fields = {"user_id": 1, "book_id": 1, "ready_until": 1}
    holds: list[_ReadyHold] = await (
        Reservation.get_pymongo_collection()
        .find({"status": ReservationStatus.ready}, fields)
        .to_list()
    )
    if not holds:
        return 0
    kind = NotificationKind.reservation_ready
    keys = {Notification.key_for(kind, h["_id"]): h for h in holds}
    done = await _existing_keys(list(keys))
    missing = [h for key, h in keys.items() if key not in done]
    books: AsyncCursor[TitleRow] = Book.get_pymongo_collection().find(
        {"_id": {"$in": list({h["book_id"] for h in missing})}}, {"title": 1}
    )
    titles = {raw["_id"]: str(raw["title"]) async for raw in books}
    created = 0
    for hold in missing:
        title = titles.get(hold["book_id"], creation.UNKNOWN_TITLE)
        if await creation.create(
            kind=kind,
            user_id=hold["user_id"],
            reservation_id=hold["_id"],
            message=creation.ready_message(title, hold.get("ready_until")),
        ):
            created += 1
    return created


async def create_missing() -> int:
    """Create every missing notification; how many this call created.

    A loan that is already past due gets `overdue` only: a `due_soon` after the due time
    would tell the reader nothing.
    """
    now = clock.now()
    active = {"status": LoanStatus.active}
    created = await _notify_loans(
        kind=NotificationKind.overdue, query={**active, "due_at": {"$lt": now}}
    )
    created += await _notify_loans(
        kind=NotificationKind.due_soon,
        query={**active, "due_at": {"$gte": now, "$lte": now + DUE_SOON_WINDOW}},
    )
    created += await _notify_ready_holds()
    return created
