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


DOCUMENTS = [Loan]
