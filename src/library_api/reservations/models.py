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
    # True while waiting or ready.
    open: bool = True
    # db.pair_key while open, removed when closed: the unique index allows one open hold per
    # reader and book.
    open_key: str | None = None
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
                [("open_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"open_key": {"$type": "string"}},
                name="one_open_hold",
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

# Replaced by `one_open_hold` (the embedded engine's cost of a compound unique index).
RETIRED_INDEXES = {"reservations": ("one_open_hold_per_user_book",)}
# The reservations that carry `open_key` (db.build_indexes keys those written before it).
PAIR_KEYS = {"reservations": ("open_key", {"open": True})}
