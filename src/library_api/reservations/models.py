from datetime import datetime
from enum import StrEnum
from typing import NotRequired, TypedDict

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pymongo import ASCENDING, IndexModel


class ReservationStatus(StrEnum):
    waiting = "waiting"
    ready = "ready"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    expired = "expired"


OPEN_STATUSES = (ReservationStatus.waiting, ReservationStatus.ready)


class Reservation(Document):
    book_id: PydanticObjectId
    user_id: PydanticObjectId
    status: ReservationStatus = ReservationStatus.waiting
    # True while waiting or ready: lets a partial unique index allow one open hold per reader.
    open: bool = True
    created_at: datetime
    ready_at: datetime | None = None
    ready_until: datetime | None = None
    closed_at: datetime | None = None

    class Settings:
        name = "reservations"
        indexes = [
            IndexModel(
                [("book_id", ASCENDING), ("status", ASCENDING), ("created_at", ASCENDING)],
                name="queue",
            ),
            IndexModel(
                [("user_id", ASCENDING), ("status", ASCENDING), ("created_at", ASCENDING)],
                name="by_user",
            ),
            IndexModel([("status", ASCENDING), ("ready_until", ASCENDING)], name="ready_expiry"),
            IndexModel(
                [("user_id", ASCENDING), ("book_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"open": True},
                name="one_open_hold_per_user_book",
            ),
        ]


# Raw reads of reservations (PyMongo projections), typed so mypy checks their keys.


class BookRow(TypedDict):
    """A reservation read for its book (`{"book_id": 1}`)."""

    _id: ObjectId
    book_id: ObjectId


class StatusRow(BookRow):
    """...and its status (`{"book_id": 1, "status": 1}`)."""

    status: str


class HoldRow(TypedDict):
    """A reservation read for its reader's place in the queue (`{"user_id", "status",
    "ready_until"}`)."""

    _id: ObjectId
    user_id: ObjectId
    status: str
    ready_until: NotRequired[datetime | None]


DOCUMENTS = [Reservation]
