from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, IndexModel


class FineStatus(StrEnum):
    open = "open"
    paid = "paid"
    waived = "waived"


class Payment(BaseModel):
    amount_cents: int
    by: PydanticObjectId
    at: datetime


class Waiver(BaseModel):
    """Kept for the record: who let the balance go, when and why."""

    amount_cents: int
    by: PydanticObjectId
    at: datetime
    reason: str


class Fine(Document):
    """The fine of one late return. Its id is the loan's: a loan carries at most one fine
    because an `_id` is unique, with no further index to maintain on every write."""

    # None once the reader's history is anonymised (a closed fine only) or the reader erased.
    user_id: PydanticObjectId | None
    book_title: str
    amount_cents: int
    paid_cents: int = 0
    waived_cents: int = 0
    balance_cents: int
    currency: str
    status: FineStatus = FineStatus.open
    created_at: datetime
    updated_at: datetime
    payments: list[Payment] = []
    waiver: Waiver | None = None

    class Settings:
        name = "fines"
        indexes = [
            IndexModel(
                [("user_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)],
                name="by_user_status",
            ),
            IndexModel([("status", ASCENDING), ("created_at", DESCENDING)], name="by_status"),
        ]


# Raw reads of fines (PyMongo projections), typed so mypy checks their keys.


class FineAmount(TypedDict):
    """A fine read for its amount (`{"amount_cents": 1}`)."""

    _id: ObjectId
    amount_cents: int


class FineBalances(FineAmount):
    """...and how its balance came about, for the consistency check (`{"amount_cents",
    "paid_cents", "waived_cents", "balance_cents", "status"}`)."""

    paid_cents: int
    waived_cents: int
    balance_cents: int
    status: str


class StoredFine(FineBalances):
    """A whole fine, as a conditional update returns it (validated as a `Fine` after)."""

    user_id: ObjectId | None


DOCUMENTS = [Fine]
