"""When a borrow is refused, and with which code: the rules, stated once.

Pure (no database): loans/service.py's `borrow` applies them to what each of its steps
learns (the overdue check, the fines check, the loan slot, the copy), and
loans/availability.py to a snapshot, to list every code a borrow would get now without
changing anything. Both pick the code to answer with by `BORROW_REFUSALS`' order.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from beanie import PydanticObjectId

from ..config import Settings
from ..errors import AppError
from ..fines import service as fines
from ..users.models import User
from .models import LoanStatus

# Every 409 of a borrow, in precedence: when several apply, the first is the answer.
BORROW_REFUSALS: dict[str, str] = {
    "has_overdue_loans": "Return your overdue loans before borrowing more",
    "fines_outstanding": "",  # the text names the settings' threshold (`refused`)
    "already_borrowed": "This book is already on loan to this reader",
    "loan_limit_reached": "The reader holds the maximum number of active loans",
    "no_copies_available": "No copy of this book is available",
}


@dataclass(frozen=True)
class BorrowFacts:
    """What holds of a reader and a book; a path that has not asked leaves a fact False."""

    overdue: bool = False  # an active loan of the reader's is past its due date
    fined: bool = False  # the reader's open fines block borrowing (`fines.blocks`)
    has_book: bool = False  # the reader has this book on loan
    at_limit: bool = False  # every loan slot of the reader's is taken (`at_loan_limit`)
    no_copy: bool = False  # no copy on the shelf, none held for this reader


@dataclass(frozen=True)
class OnLoan:
    """An active loan, as availability needs it (loans/service.py `loans_out`)."""

    id: PydanticObjectId
    user_id: PydanticObjectId
    book_id: PydanticObjectId
    due_at: datetime


def borrow_blockers(facts: BorrowFacts) -> list[str]:
    """Every code a borrow would be refused with, given `facts`, in precedence order."""
    applies = {
        "has_overdue_loans": facts.overdue,
        "fines_outstanding": facts.fined,
        "already_borrowed": facts.has_book,
        "loan_limit_reached": facts.at_limit,
        "no_copies_available": facts.no_copy,
    }
    return [code for code in BORROW_REFUSALS if applies[code]]


def outranks(code: str, other: str) -> bool:
    """Whether `code` is answered before `other` when both apply."""
    order = list(BORROW_REFUSALS)
    return order.index(code) < order.index(other)


def refused(code: str, settings: Settings) -> AppError:
    if code == "fines_outstanding":
        return fines.fines_outstanding(settings)
    return AppError(409, code, BORROW_REFUSALS[code])


def at_loan_limit(reader: User, settings: Settings) -> bool:
    """As `slots.take_loan_slot` judges it: the slot counter, not the loans, decides."""
    return reader.active_loans >= settings.max_active_loans


def is_overdue(due_at: datetime, now: datetime) -> bool:
    return due_at < now


def overdue_clause(user_id: PydanticObjectId, now: datetime) -> dict[str, Any]:
    """The query for the reader's overdue loans (`is_overdue` in MongoDB's terms)."""
    return {"user_id": user_id, "status": LoanStatus.active.value, "due_at": {"$lt": now}}


def none_overdue(reader: User, now: datetime) -> bool:
    """Whether the reader, as read when the request began, can have no overdue loan.

    Loans made since are not due yet, and renewals only push due dates later: so a reader
    with no loan then (the counter only runs ahead of the loans), or whose loans are known
    and none of them due before now, has none overdue.
    """
    dues = reader.loans_due
    if reader.active_loans == 0:
        return True
    return dues is not None and not any(is_overdue(entry.due, now) for entry in dues)
