"""Creating notifications: at most one of each kind per loan or reservation.

`announce_ready` is called at the hand-over that makes a reservation ready; the scan
(scan.py) creates whatever a hand-over missed, and the due-soon and overdue notices.
"""

import logging
from datetime import UTC, datetime
from typing import cast

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from .. import clock
from ..books.models import Book
from ..db import doc_id
from ..reservations.models import Reservation
from .models import Notification, NotificationKind, TitleRow

logger = logging.getLogger("library_api")
UNKNOWN_TITLE = "The book"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ready_message(title: str, ready_until: datetime | None) -> str:
    message = f'"{title}", which you reserved, is ready for you to pick up.'
    if ready_until is not None:
        message += f" It is held for you until {_when(ready_until)}."
    return message


def due_soon_message(title: str, due_at: datetime) -> str:
    return f'"{title}" is due back on {_when(due_at)}. Return or renew it by then.'


def overdue_message(title: str, due_at: datetime) -> str:
    return f'"{title}" was due back on {_when(due_at)} and is overdue. Please return it.'


async def create(
    *,
    kind: NotificationKind,
    user_id: ObjectId,
    message: str,
    loan_id: ObjectId | None = None,
    reservation_id: ObjectId | None = None,
) -> bool:
    """Store one notification; False when it already exists (the unique key says so)."""
    subject = loan_id if loan_id is not None else reservation_id
    assert subject is not None
    now = clock.now()
    notification = Notification(
        key=Notification.key_for(kind, subject),
        user_id=PydanticObjectId(user_id),
        kind=kind,
        loan_id=None if loan_id is None else PydanticObjectId(loan_id),
        reservation_id=None if reservation_id is None else PydanticObjectId(reservation_id),
        message=message,
        created_at=now,
        next_mail_at=now,
    )
    try:
        await notification.insert()
    except DuplicateKeyError:
        return False
    return True


async def _book_title(book_id: PydanticObjectId) -> str:
    found = await Book.get_pymongo_collection().find_one({"_id": book_id}, {"title": 1})
    raw = cast(TitleRow | None, found)
    return str(raw["title"]) if raw is not None else UNKNOWN_TITLE


async def announce_ready(*, reservation: Reservation) -> None:
    """The reader's `reservation_ready` notification, at most once per reservation.

    Called at the hand-over, after the reservation became ready. It never raises: the
    hand-over has happened already, and the next scan creates whatever is missing here.
    """
    try:
        await create(
            kind=NotificationKind.reservation_ready,
            user_id=reservation.user_id,
            reservation_id=doc_id(reservation),
            message=ready_message(await _book_title(reservation.book_id), reservation.ready_until),
        )
    except PyMongoError:
        logger.exception("could not store the reservation_ready notification; the scan will")
