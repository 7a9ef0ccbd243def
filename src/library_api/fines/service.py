"""Fines for late returns: charged once at the return, paid in parts, or waived.

Every write is one update conditional on the fine's state, so parallel returns charge once
(the fine's id is the loan's) and parallel payments never take more than the balance.
"""

import math
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict, cast

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError

from .. import clock
from ..config import Settings
from ..db import IdRow
from ..errors import AppError, not_found
from ..loans.models import Loan, LoanStatus, ReturnedLoan
from ..pagination import id_filters
from ..users.models import User
from .models import Fine, FineAmount, FineBalances, FineStatus, Payment, StoredFine, Waiver

DAY = timedelta(days=1)


class _Returned(TypedDict):
    """A returned loan read for its fine (`{"due_at", "returned_at", "user_id", "book_title"}`)."""

    _id: ObjectId
    due_at: datetime
    returned_at: datetime
    user_id: ObjectId
    book_title: str


class _Due(TypedDict):
    """A reader's open balances summed (`$group` by `user_id`)."""

    _id: ObjectId | None
    due: int


class _Owing(TypedDict):
    """A reader read for `fines_due_cents`."""

    _id: ObjectId
    fines_due_cents: NotRequired[int | None]  # missing on a reader from before it was kept


def fine_cents(*, due_at: datetime, returned_at: datetime, settings: Settings) -> int:
    """Days late (a started 24-hour period counts whole) x the daily fine, capped per loan."""
    late = returned_at - due_at
    if late <= timedelta(0) or settings.fine_per_day_cents <= 0:
        return 0
    days = math.ceil(late / DAY)
    return min(days * settings.fine_per_day_cents, settings.fine_max_cents)


async def charge_late_return(
    *,
    loan_id: ObjectId,
    user_id: ObjectId,
    book_title: str,
    due_at: datetime,
    returned_at: datetime,
    settings: Settings,
) -> int:
    """Records the fine of a loan just returned (if late); returns its amount.

    A second call for the same loan (a repair, a race) finds the fine there and changes
    nothing: the amount it returns is the one recorded.
    """
    amount = fine_cents(due_at=due_at, returned_at=returned_at, settings=settings)
    if amount == 0:
        return 0
    now = clock.now()
    fine = Fine(
        id=loan_id,
        user_id=user_id,
        book_title=book_title,
        amount_cents=amount,
        balance_cents=amount,
        currency=settings.currency,
        created_at=now,
        updated_at=now,
    )
    try:
        await fine.insert()
    except DuplicateKeyError:
        existing = await Fine.get(loan_id)
        return existing.amount_cents if existing else 0
    await _owe(user_id, amount)
    return amount


async def _owe(user_id: ObjectId | None, delta: int) -> None:
    """Moves the reader's `fines_due_cents`, which borrowing and the preflight read from the
    authenticated user without a query; `check-consistency --repair` mends it after a crash
    between a fine's write and this one."""
    if user_id is not None and delta:
        await User.get_pymongo_collection().update_one(
            {"_id": user_id}, {"$inc": {"fines_due_cents": delta}}
        )


async def recorded(*, loan_ids: list[ObjectId]) -> dict[ObjectId, int]:
    """The fine recorded for each of these loans that has one."""
    if not loan_ids:
        return {}
    fines = Fine.get_pymongo_collection()
    found: AsyncCursor[FineAmount] = fines.find({"_id": {"$in": loan_ids}}, {"amount_cents": 1})
    return {doc["_id"]: doc["amount_cents"] async for doc in found}


async def open_fine_loans(*, readers: Any) -> list[ObjectId]:
    """The loans (a fine's id is its loan's) with an open fine of these readers (a query on
    `user_id`)."""
    found: AsyncCursor[IdRow] = Fine.get_pymongo_collection().find(
        {"status": FineStatus.open.value, "user_id": readers}, {"_id": 1}
    )
    return [doc["_id"] async for doc in found]


def can_block(settings: Settings) -> bool:
    """Whether fines can keep anyone from borrowing at all (else no balance is asked)."""
    return settings.fine_block_cents > 0 and settings.fine_per_day_cents > 0


def blocks(*, balance_cents: int, settings: Settings) -> bool:
    """Whether an open balance keeps its reader from borrowing and renewing."""
    return can_block(settings) and balance_cents >= settings.fine_block_cents


def is_blocked(*, reader: User, settings: Settings) -> bool:
    """`blocks` for the reader's open balance, as the reader's record has it (no query)."""
    return blocks(balance_cents=reader.fines_due_cents, settings=settings)


def check_not_blocked(*, reader: User, settings: Settings) -> None:
    """409 fines_outstanding when the reader's open balance reaches FINE_BLOCK_CENTS."""
    if is_blocked(reader=reader, settings=settings):
        raise fines_outstanding(settings)


def fines_outstanding(settings: Settings) -> AppError:
    return AppError(
        409,
        "fines_outstanding",
        f"Open fines of {settings.fine_block_cents} cents or more must be settled first",
    )


def _closed() -> AppError:
    return AppError(409, "fine_closed", "This fine is already paid or waived")


async def pay(*, fine_id: PydanticObjectId, amount_cents: int, by: PydanticObjectId) -> Fine:
    now = clock.now()
    payment = Payment(amount_cents=amount_cents, by=by, at=now)
    found = await Fine.get_pymongo_collection().find_one_and_update(
        # The precondition: open, and owing at least this much.
        {"_id": fine_id, "status": FineStatus.open.value, "balance_cents": {"$gte": amount_cents}},
        {
            "$inc": {"paid_cents": amount_cents, "balance_cents": -amount_cents},
            "$push": {"payments": payment.model_dump()},
            "$set": {"updated_at": now},
        },
        return_document=ReturnDocument.AFTER,
    )
    raw = cast(StoredFine | None, found)
    if raw is None:
        fine = await _existing(fine_id)
        if fine.status != FineStatus.open:
            raise _closed()
        raise _over_balance(fine.balance_cents)
    await _owe(raw.get("user_id"), -amount_cents)
    if raw["balance_cents"] == 0:
        raw = await _settle(fine_id, now) or raw
    return _fine(raw)


async def _settle(fine_id: PydanticObjectId, now: datetime) -> StoredFine | None:
    found = await Fine.get_pymongo_collection().find_one_and_update(
        {"_id": fine_id, "status": FineStatus.open.value, "balance_cents": 0},
        {"$set": {"status": FineStatus.paid.value, "updated_at": now}},
        return_document=ReturnDocument.AFTER,
    )
    return cast(StoredFine | None, found)


def _over_balance(balance: int) -> AppError:
    # As FastAPI's own 422s: the amount is checked against the balance it may not exceed.
    return AppError(
        422, "validation_error", f"amount_cents must be between 1 and the balance, {balance}"
    )


async def waive(*, fine_id: PydanticObjectId, reason: str, by: PydanticObjectId) -> Fine:
    # The balance waived is the one read; a payment landing in between makes the update miss
    # and the waiver is tried again on the new balance.
    for _ in range(5):
        fine = await _existing(fine_id)
        if fine.status != FineStatus.open:
            raise _closed()
        now = clock.now()
        waiver = Waiver(amount_cents=fine.balance_cents, by=by, at=now, reason=reason)
        raw = await Fine.get_pymongo_collection().find_one_and_update(
            {"_id": fine_id, "status": FineStatus.open.value, "balance_cents": fine.balance_cents},
            {
                "$inc": {"waived_cents": fine.balance_cents},
                "$set": {
                    "balance_cents": 0,
                    "status": FineStatus.waived.value,
                    "waiver": waiver.model_dump(),
                    "updated_at": now,
                },
            },
            return_document=ReturnDocument.AFTER,
        )
        if raw is not None:
            await _owe(fine.user_id, -fine.balance_cents)
            return _fine(raw)
    raise AppError(409, "fine_busy", "The fine is changing; try again")


def _fine(raw: StoredFine) -> Fine:
    fine: Fine = Fine.model_validate(raw)
    return fine


async def _existing(fine_id: PydanticObjectId) -> Fine:
    fine = await Fine.get(fine_id)
    if fine is None:
        raise not_found("Fine")
    return fine


async def get_fine(*, fine_id: PydanticObjectId) -> Fine:
    return await _existing(fine_id)


async def list_fines(
    *,
    user_id: PydanticObjectId | str | None,
    status: FineStatus | None,
    skip: int,
    limit: int,
) -> tuple[list[Fine], int]:
    """A page of fines; a malformed `user_id` filter names nothing (an empty page)."""
    ids = id_filters(user_id=user_id)
    if ids is None:
        return [], 0
    query: dict[str, Any] = dict(ids)
    if status is not None:
        query["status"] = status.value
    total = await Fine.find(query).count()
    fines = await Fine.find(query).sort("-created_at", "-_id").skip(skip).limit(limit).to_list()
    return fines, total


async def drift(*, settings: Settings) -> list[str]:
    """What check-consistency reports of fines: a balance that is not amount - paid -
    waived (or a status that does not match it), and, while fines are on, a loan returned
    late with no fine (a return cut off before its fine was recorded)."""
    lines: list[str] = []
    fines: AsyncCursor[FineBalances] = Fine.get_pymongo_collection().find(
        {}, {"amount_cents": 1, "paid_cents": 1, "waived_cents": 1, "balance_cents": 1, "status": 1}
    )
    async for fine in fines:
        owed = fine["amount_cents"] - fine["paid_cents"] - fine["waived_cents"]
        closed = fine["status"] != FineStatus.open.value
        if fine["balance_cents"] != owed or closed != (owed == 0):
            lines.append(
                f"fine {fine['_id']}: balance {fine['balance_cents']}, status {fine['status']}"
                f" (amount {fine['amount_cents']} - paid {fine['paid_cents']} - waived "
                f"{fine['waived_cents']} = {owed})"
            )
    for user_id, stored, owed in await _dues():
        lines.append(f"user {user_id}: fines_due_cents {stored}, open balances sum to {owed}")
    lines.extend(
        f"loan {loan['_id']}: returned late with no fine" for loan in await _unfined(settings)
    )
    return lines


async def _unfined(settings: Settings) -> list[_Returned]:
    if settings.fine_per_day_cents <= 0:
        return []
    late: list[_Returned] = []
    seen: set[ObjectId] = set()
    # Returned loans not yet moved to the history, then the history (loans/history.py); a
    # loan caught between the two by a move counts once.
    for collection in (Loan.get_pymongo_collection(), ReturnedLoan.get_pymongo_collection()):
        returned: AsyncCursor[_Returned] = collection.find(
            {"status": LoanStatus.returned.value, "fine_cents": {"$in": [0, None]}},
            {"due_at": 1, "returned_at": 1, "user_id": 1, "book_title": 1},
        )
        async for loan in returned:
            if loan["_id"] in seen:
                continue
            seen.add(loan["_id"])
            if loan.get("user_id") is not None and loan["returned_at"] > loan["due_at"]:
                late.append(loan)
    if not late:
        return []
    fined = await recorded(loan_ids=[loan["_id"] for loan in late])
    return [loan for loan in late if loan["_id"] not in fined]


async def _dues() -> list[tuple[ObjectId, int, int]]:
    """(user, fines_due_cents stored, open balances) for each reader where they differ."""
    owed: dict[ObjectId | None, int] = {}
    rows: AsyncCommandCursor[_Due] = await Fine.get_pymongo_collection().aggregate(
        [
            {"$match": {"status": FineStatus.open.value}},
            {"$group": {"_id": "$user_id", "due": {"$sum": "$balance_cents"}}},
        ]
    )
    async for row in rows:
        owed[row["_id"]] = int(row["due"])
    users: AsyncCursor[_Owing] = User.get_pymongo_collection().find(
        {"$or": [{"fines_due_cents": {"$nin": [0, None]}}, {"_id": {"$in": list(owed)}}]},
        {"fines_due_cents": 1},
    )
    return [
        (user["_id"], user.get("fines_due_cents") or 0, owed.get(user["_id"], 0))
        async for user in users
        if (user.get("fines_due_cents") or 0) != owed.get(user["_id"], 0)
    ]


async def repair_dues() -> list[str]:
    """Sets each drifted `fines_due_cents` to the reader's open balances, if it still holds
    the value seen (a payment landing meanwhile wins; the next check looks again)."""
    repaired = []
    for user_id, stored, owed in await _dues():
        result = await User.get_pymongo_collection().update_one(
            {"_id": user_id, "fines_due_cents": stored}, {"$set": {"fines_due_cents": owed}}
        )
        if result.modified_count:
            repaired.append(f"user {user_id}: fines_due_cents {stored} -> {owed}")
    return repaired


async def repair_missing(*, settings: Settings) -> list[str]:
    """Records the fine of every loan returned late without one (idempotent: a fine's id is
    its loan's, so a return finishing meanwhile cannot make a second)."""
    repaired = []
    for loan in await _unfined(settings):
        amount = await charge_late_return(
            loan_id=loan["_id"],
            user_id=loan["user_id"],
            book_title=loan["book_title"],
            due_at=loan["due_at"],
            returned_at=loan["returned_at"],
            settings=settings,
        )
        for collection in (Loan.get_pymongo_collection(), ReturnedLoan.get_pymongo_collection()):
            await collection.update_one({"_id": loan["_id"]}, {"$set": {"fine_cents": amount}})
        repaired.append(f"loan {loan['_id']}: fine of {amount} recorded")
    return repaired
