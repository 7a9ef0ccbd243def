"""Loan-slot state on the reader's record: the one module that writes `active_loans` and
`loans_due` (copies/service.py does the same for a book's copies).

`active_loans` counts the loan slots taken, at most MAX_ACTIVE_LOANS; a borrow takes one
before it writes its loan, and a return frees it after closing the loan, so the counter only
runs ahead of the loans. `loans_due` keeps, per slot, the loan and a date it is not due
before, so a borrow can tell from the reader's record, without a query, that no loan of
theirs is overdue (`loans.rules.none_overdue`). Every change is one conditional update.
"""

from datetime import datetime
from typing import Any

from beanie import PydanticObjectId

from ..users.models import User

# On a reader: each loan slot's loan and a date it is not due before (see `take_loan_slot`).
DUES = "loans_due"


def _dues_known() -> dict[str, Any]:
    return {"$isArray": f"${DUES}"}


async def take_loan_slot(
    *, user_id: PydanticObjectId, loan_id: PydanticObjectId, limit: int, due_at: datetime
) -> bool:
    """Take one of the reader's `limit` loan slots, for the loan `loan_id` (about to be
    written) due at `due_at`; False when all are taken.

    `loans_due` follows: one entry per slot taken, a date its loan is not due before (a
    renewal moves it on afterwards; a librarian's change forgets them all). The first slot
    starts the list (the counter only runs ahead of the loans, so none is active then); the
    next ones add to it. Unknown (None, as for a reader whose loans predate it) stays unknown
    until the reader has no loan again.
    """
    entry = {"$literal": [{"loan": loan_id, "due": due_at}]}
    taken = await User.get_pymongo_collection().update_one(
        {"_id": user_id, "active_loans": {"$lt": limit}},
        [
            {
                "$set": {
                    "active_loans": {"$add": ["$active_loans", 1]},
                    DUES: {
                        "$cond": [
                            {"$eq": ["$active_loans", 0]},
                            entry,
                            {
                                "$cond": [
                                    _dues_known(),
                                    {"$concatArrays": [f"${DUES}", entry]},
                                    None,
                                ]
                            },
                        ]
                    },
                }
            }
        ],
    )
    return taken.modified_count == 1


async def forget_due_dates(*, user_id: PydanticObjectId) -> None:
    """A librarian is about to change a due date of the reader's: what `loans_due` knew is
    forgotten (until the reader has no loan again), so it never claims a date the loan has
    passed, however the change and a renewal's `renew_due_date` interleave."""
    await User.get_pymongo_collection().update_one(
        {"_id": user_id, DUES: {"$ne": None}}, {"$set": {DUES: None}}
    )


async def renew_due_date(
    *, user_id: PydanticObjectId, loan_id: PydanticObjectId, was: datetime, due_at: datetime
) -> None:
    """After a renewal moved the loan from `was` to `due_at`: its entry follows, if it still
    says `was` (a later renewal that got there first, or a forgetting, wins)."""
    moved = {
        "$cond": [
            {"$and": [{"$eq": ["$$this.loan", loan_id]}, {"$eq": ["$$this.due", was]}]},
            {"loan": "$$this.loan", "due": {"$literal": due_at}},
            "$$this",
        ]
    }
    await User.get_pymongo_collection().update_one(
        {"_id": user_id, DUES: {"$elemMatch": {"loan": loan_id, "due": was}}},
        [{"$set": {DUES: {"$map": {"input": f"${DUES}", "in": moved}}}}],
    )


async def release_loan_slot(*, user_id: PydanticObjectId, loan_id: PydanticObjectId) -> bool:
    """Inverse of `take_loan_slot`: at the loan's return, or to undo a borrow."""
    others = {"$filter": {"input": f"${DUES}", "cond": {"$ne": ["$$this.loan", loan_id]}}}
    released = await User.get_pymongo_collection().update_one(
        {"_id": user_id, "active_loans": {"$gt": 0}},
        [
            {
                "$set": {
                    "active_loans": {"$add": ["$active_loans", -1]},
                    # The last slot freed: no loan is out, whatever was known before.
                    DUES: {
                        "$cond": [
                            {"$eq": ["$active_loans", 1]},
                            {"$literal": []},
                            {"$cond": [_dues_known(), others, None]},
                        ]
                    },
                }
            }
        ],
    )
    return released.modified_count == 1


# --- repair -----------------------------------------------------------------------------------


async def correct_loan_slots(*, user_id: Any, seen: Any, expected: int) -> bool:
    """`correct_book` for a reader's `active_loans`; what is known of their due dates is
    forgotten too (a counter that fell behind the loans may have let it run ahead)."""
    done = await User.get_pymongo_collection().update_one(
        {"_id": user_id, "active_loans": seen},
        {"$set": {"active_loans": expected, DUES: None}},
    )
    return done.modified_count == 1
