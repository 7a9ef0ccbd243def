from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
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
                [("user_id", ASCENDING), ("book_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"status": "active"},
                name="one_active_loan_per_user_book",
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


DOCUMENTS = [Loan, ReturnedLoan]
