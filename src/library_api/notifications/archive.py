"""Notifications past their use leave `notifications` for `notification_archive`.

`notifications` is what the scan checks its keys against, the mailer claims from and every
live stream polls; on the embedded server each write to it costs a pass over it. So it keeps
what may still be used, and the rest moves at every scan, with the same `_id` and fields. A
notification is past its use when all of these hold:

- it is more than a day past the mailer's horizon (outbox.MAIL_MAX_AGE: it will not be
  mailed) and no sender holds a claim on it;
- its subject is closed: the loan is no longer out (while it is, the scan looks for the
  notification's key to know it was sent), or the reservation no longer ready.

Its reader still lists it and marks it read (service.py reads both collections). The live
stream's replay (`Last-Event-ID`) reads `notifications` alone: a client away for over a week
catches up from the list.

Each batch copies (an upsert by `_id`) and then deletes from `notifications` only what is
unchanged since the copy (the same `read_at`): a crash, or a mark-read, in between leaves a
notification in both places; readers take the copy in `notifications`, and the next scan
moves it again.
"""

import asyncio
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.asynchronous.cursor import AsyncCursor

from .. import clock
from ..db import IdRow
from ..loans.models import Loan, LoanStatus
from ..reservations.models import Reservation, ReservationStatus
from ..users.models import User
from .models import ArchivedNotification, Notification
from .outbox import MAIL_MAX_AGE

SPENT_AFTER = MAIL_MAX_AGE + timedelta(days=1)
# Notifications looked at per batch: three reads and, when some are spent, two writes and a
# look at their readers.
BATCH = 100


async def _still_open(subject_field: str, ids: list[ObjectId]) -> set[ObjectId]:
    if subject_field == "loan_id":
        collection, query = Loan.get_pymongo_collection(), {"status": LoanStatus.active.value}
    else:
        collection = Reservation.get_pymongo_collection()
        query = {"status": ReservationStatus.ready.value}
    if not ids:
        return set()
    found: AsyncCursor[IdRow] = collection.find({"_id": {"$in": ids}, **query}, {"_id": 1})
    return {row["_id"] async for row in found}


async def _spent(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those of `docs` whose loan or reservation is closed."""
    open_ones: set[ObjectId] = set()
    for field in ("loan_id", "reservation_id"):
        ids = [doc[field] for doc in docs if doc.get(field) is not None]
        open_ones |= await _still_open(field, ids)
    return [
        doc
        for doc in docs
        if doc.get("loan_id") not in open_ones and doc.get("reservation_id") not in open_ones
    ]


async def _forget_erased(archive: Any, readers: set[ObjectId]) -> None:
    """An account erased while its notifications were being copied: the copies go too (the
    erasure deletes from the archive again once the account is gone; this is the other
    order)."""
    found: AsyncCursor[IdRow] = User.get_pymongo_collection().find(
        {"_id": {"$in": list(readers)}}, {"_id": 1}
    )
    gone = readers - {row["_id"] async for row in found}
    if gone:
        await archive.delete_many({"user_id": {"$in": list(gone)}})


async def archive_spent() -> int:
    """Move the notifications past their use, BATCH looked at at a time; how many moved.
    Idempotent and resumable."""
    notifications = Notification.get_pymongo_collection()
    archive = ArchivedNotification.get_pymongo_collection()
    now = clock.now()
    old: dict[str, Any] = {
        "created_at": {"$lt": now - SPENT_AFTER},
        "$or": [{"mail_claimed_until": None}, {"mail_claimed_until": {"$lt": now}}],
    }
    moved = 0
    after: ObjectId | None = None
    while True:
        # Past the last one looked at: one whose subject is open does not hold up the rest.
        query = old if after is None else {**old, "_id": {"$gt": after}}
        docs = await notifications.find(query).sort("_id", 1).limit(BATCH).to_list(None)
        if not docs:
            break
        after = docs[-1]["_id"]
        spent = await _spent(docs)
        if spent:
            copies = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in spent]
            await archive.bulk_write(copies, ordered=False)
            exactly = [{"_id": doc["_id"], "read_at": doc.get("read_at")} for doc in spent]
            moved += (await notifications.delete_many({"$or": exactly})).deleted_count
            await _forget_erased(archive, {doc["user_id"] for doc in spent})
        if len(docs) < BATCH:
            break
        await asyncio.sleep(0)
    return moved
