from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .. import clock
from .models import Loan, LoanStatus


class LoanFilter(StrEnum):
    active = "active"
    returned = "returned"
    overdue = "overdue"  # active and past its due date


class BorrowRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{}]})

    # A librarian checks out for this member; a member may only name itself. Any string: a
    # malformed id is as unknown as a missing one (404), or not the member's own (403).
    user_id: str | None = Field(
        default=None,
        description="The reader to check out for (librarian); left out: the caller",
        examples=["6650f0a1c4b5d6e7f8091a2b"],
    )


class DueDateChange(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"due_at": "2026-12-21T10:00:00Z"}]})

    # With a UTC offset, as every time of the API; it may lie in the past (a correction).
    due_at: AwareDatetime


class LoanPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6650f3d4b5c6d7e8f9a0b1c2",
                    "book_id": "6650f1c2a4b5c6d7e8f90123",
                    "user_id": "6650f0a1c4b5d6e7f8091a2b",
                    "book_title": "Pride and Prejudice",
                    "borrowed_at": "2026-11-23T10:00:00Z",
                    "due_at": "2026-12-07T10:00:00Z",
                    "returned_at": None,
                    "renewals": 0,
                    "status": "active",
                    "overdue": False,
                    "fine_cents": 0,
                }
            ]
        }
    )

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
    # Active and overdue: the fine it would carry if returned now; returned: the fine recorded
    # at its return; otherwise 0 (contract: Fines).
    fine_cents: int

    @classmethod
    def of(cls, loan: Loan, *, fine_cents: int = 0) -> "LoanPublic":
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
            fine_cents=loan.fine_cents if loan.status == LoanStatus.returned else fine_cents,
            overdue=loan.status == LoanStatus.active and loan.due_at < clock.now(),
        )
