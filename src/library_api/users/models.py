from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel

from .. import clock


class Role(StrEnum):
    member = "member"
    librarian = "librarian"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: "Role") -> bool:
        return self.rank >= other.rank


_RANKS = {Role.member: 0, Role.librarian: 1, Role.admin: 2}


class LoanDue(BaseModel):
    loan: PydanticObjectId
    due: datetime


class User(Document):
    name: str
    email: str  # trimmed and lower-cased, so the unique index is case-insensitive
    password_hash: str
    role: Role = Role.member
    is_active: bool = True
    created_at: datetime
    # The reader asked to keep their loan history past HISTORY_RETENTION_DAYS (privacy/).
    keep_history: bool = False
    # The sum of the reader's open fine balances, kept by fines/service.py.
    fines_due_cents: int = 0
    # Moved with `$inc` and the limit in the filter, so parallel borrows cannot pass it.
    active_loans: int = 0
    # For each loan slot taken, the loan and a date it is not due before (None: not known),
    # moved with the slot, so a borrow can tell without a query that none is overdue
    # (copies/slots.py).
    loans_due: list[LoanDue] | None = None

    class Settings:
        name = "users"
        indexes = [
            IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
            IndexModel([("role", ASCENDING), ("is_active", ASCENDING)], name="role_active"),
            IndexModel([("created_at", ASCENDING)], name="created_at"),
        ]

    @classmethod
    def new(cls, *, name: str, email: str, password_hash: str, role: Role) -> "User":
        return cls(
            name=name, email=email, password_hash=password_hash, role=role, created_at=clock.now()
        )


DOCUMENTS = [User]
