from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel


class LoanStatus(StrEnum):
    active = "active"
    returned = "returned"


class Loan(Document):
    book_id: PydanticObjectId
    user_id: PydanticObjectId
    book_title: str
    borrowed_at: datetime
    due_at: datetime
    returned_at: datetime | None = None
    renewals: int = 0
    status: LoanStatus = LoanStatus.active
    # The fine recorded at the return (fines/service.py), kept here so a list shows it.
    fine_cents: int = 0
    # db.pair_key while the loan is active, removed at the return: the unique index below.
    active_key: str | None = None

    class Settings:
        name = "loans"
        indexes = [
            IndexModel(
                [("user_id", ASCENDING), ("status", ASCENDING), ("borrowed_at", DESCENDING)],
                name="by_user_status",
            ),
            IndexModel(
                [("book_id", ASCENDING), ("status", ASCENDING), ("borrowed_at", DESCENDING)],
                name="by_book_status",
            ),
            IndexModel([("status", ASCENDING), ("due_at", ASCENDING)], name="by_status_due"),
            # A member holds at most one active loan of a book, whatever the interleaving.
            IndexModel(
                [("active_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"active_key": {"$type": "string"}},
                name="one_active_loan",
            ),
        ]


class ReturnedLoan(Loan):
    """A returned loan, moved out of `loans` into `loan_history` with the same `_id` and
    fields (loans/history.py), so the active collection and its unique index stay small."""

    class Settings:
        name = "loan_history"
        indexes = [
            IndexModel([("user_id", ASCENDING), ("borrowed_at", DESCENDING)], name="by_user"),
            IndexModel([("book_id", ASCENDING), ("borrowed_at", DESCENDING)], name="by_book"),
            IndexModel([("borrowed_at", DESCENDING)], name="by_borrowed"),
            IndexModel([("returned_at", ASCENDING)], name="by_returned"),
        ]


# Replaced by `one_active_loan` (the embedded engine's cost of a compound unique index).
RETIRED_INDEXES = {"loans": ("one_active_loan_per_user_book",)}
# The loans that carry `active_key` (db.build_indexes keys those written before it).
PAIR_KEYS = {"loans": ("active_key", {"status": LoanStatus.active.value})}


# Raw reads of loans (PyMongo projections), typed so mypy checks their keys.


class OutRow(TypedDict):
    """An active loan read for when it is due back (`{"user_id", "book_id", "due_at"}`)."""

    _id: ObjectId
    user_id: ObjectId
    book_id: ObjectId
    due_at: datetime


class DatesRow(TypedDict):
    """A loan read before a change of its due date (`{"borrowed_at", "status", "user_id"}`)."""

    _id: ObjectId
    borrowed_at: datetime
    status: str
    user_id: ObjectId


DOCUMENTS = [Loan, ReturnedLoan]
