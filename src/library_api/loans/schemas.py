from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from .. import clock
from .models import Loan, LoanStatus


class LoanFilter(StrEnum):
    active = "active"
    returned = "returned"
    overdue = "overdue"  # active and past its due date


class BorrowRequest(BaseModel):
    # A librarian checks out for this member; a member may only name itself. Any string: a
    # malformed id is as unknown as a missing one (404), or not the member's own (403).
    user_id: str | None = None


class LoanPublic(BaseModel):
    id: str
    book_id: str
    user_id: str
    book_title: str
    borrowed_at: datetime
    due_at: datetime
    returned_at: datetime | None
    renewals: int
    status: LoanStatus
    overdue: bool

    @classmethod
    def of(cls, loan: Loan) -> "LoanPublic":
        return cls(
            id=str(loan.id),
            book_id=str(loan.book_id),
            user_id=str(loan.user_id),
            book_title=loan.book_title,
            borrowed_at=loan.borrowed_at,
            due_at=loan.due_at,
            returned_at=loan.returned_at,
            renewals=loan.renewals,
            status=loan.status,
            overdue=loan.status == LoanStatus.active and loan.due_at < clock.now(),
        )
