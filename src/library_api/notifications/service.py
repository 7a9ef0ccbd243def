"""Notifications: created at hand-overs and by the periodic scan, read by their owner."""

import logging
from datetime import UTC, datetime

from beanie import PydanticObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from .. import clock
from ..books.models import Book
from ..db import doc_id
from ..reservations.models import Reservation
from .models import Notification, NotificationKind

logger = logging.getLogger("library_api")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ready_message(title: str, ready_until: datetime | None) -> str:
    message = f'"{title}", which you reserved, is ready for you to pick up.'
    if ready_until is not None:
        message += f" It is held for you until {_when(ready_until)}."
    return message


async def _create(
    *,
    kind: NotificationKind,
    user_id: PydanticObjectId,
    message: str,
    loan_id: PydanticObjectId | None = None,
    reservation_id: PydanticObjectId | None = None,
) -> bool:
    """Store one notification; False when it already exists (the unique key says so)."""
    subject = loan_id if loan_id is not None else reservation_id
    assert subject is not None
    now = clock.now()
    notification = Notification(
        key=Notification.key_for(kind, subject),
        user_id=user_id,
        kind=kind,
        loan_id=loan_id,
        reservation_id=reservation_id,
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
    raw = await Book.get_pymongo_collection().find_one({"_id": book_id}, {"title": 1})
    return str(raw["title"]) if raw is not None else "The book"


async def announce_ready(*, reservation: Reservation) -> None:
    """The reader's `reservation_ready` notification, at most once per reservation.

    Called at the hand-over, after the reservation became ready. It never raises: the
    hand-over has happened already, and the next scan creates whatever is missing here.
    """
    try:
        await _create(
            kind=NotificationKind.reservation_ready,
            user_id=reservation.user_id,
            reservation_id=doc_id(reservation),
            message=ready_message(await _book_title(reservation.book_id), reservation.ready_until),
        )
    except PyMongoError:
        logger.exception("could not store the reservation_ready notification; the scan will")
