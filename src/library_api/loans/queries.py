"""The loan questions other domains ask, kept apart from circulation (loans/service.py).

The reservations service asks whether a reader has a book on loan, and circulation calls the
reservations service: so these live below both, and neither import goes round in a circle.
"""

from beanie import PydanticObjectId

from ..db import object_id
from ..errors import AppError
from .models import Loan, LoanStatus


async def has_active_loan(*, user_id: PydanticObjectId, book_id: PydanticObjectId) -> bool:
    found = await Loan.get_pymongo_collection().find_one(
        {"user_id": user_id, "book_id": book_id, "status": LoanStatus.active.value}, {"_id": 1}
    )
    return found is not None


def id_filters(**ids: PydanticObjectId | str | None) -> dict[str, PydanticObjectId] | None:
    """Query clauses for list filters by id (loans and reservations); None when a client's
    id is malformed.

    A malformed id names nothing, so the list is empty rather than a 422. An empty string is
    a filter left out.
    """
    clauses: dict[str, PydanticObjectId] = {}
    for field, value in ids.items():
        if isinstance(value, str):
            if not value:
                continue
            try:
                value = object_id(value, field)
            except AppError:
                return None
        if value is not None:
            clauses[field] = value
    return clauses
