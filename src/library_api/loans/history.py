"""Returned loans leave `loans` for `loan_history`: the move, and the reads over both.

The active collection is the one every borrow and return writes, behind a unique index whose
cost grows with the collection on the embedded server; what is out stays there, what came
back moves here with the same `_id` and fields. A return still only marks its loan returned
in `loans` (one conditional update decides which request returned it); `archive_returned`
moves the returned loans later, in batches: at start-up (the migration of an older
database) and at every notification scan. On the embedded server a write to the history
costs a pass over the history, so the move is kept off the borrow and return path.

Each batch copies (an upsert by `_id`, so a copy that is already there is overwritten with
the same document) and then deletes from `loans` only the documents as they were copied: a
crash between the two, or a fine or anonymisation landing in between, leaves a returned loan
in both places, and the next batch copies it again and deletes it. Readers take a returned
loan found in both as one (by `_id`, the copy in `loans` first): nothing is lost or counted
twice.
"""

import asyncio
import logging
from typing import Any, cast

from beanie import PydanticObjectId
from pymongo import ReplaceOne

from .. import clock
from ..db import IdRow
from ..pagination import id_filters
from .models import Loan, LoanStatus, ReturnedLoan
from .schemas import LoanFilter

logger = logging.getLogger("library_api")

RETURNED = LoanStatus.returned.value
# Loans moved per batch: each batch is two commands, and other requests run between them.
BATCH = 100
NEWEST_FIRST = [("borrowed_at", -1), ("_id", -1)]


async def archive_returned(*, batches: int | None = None) -> int:
    """Move the returned loans out of `loans`, BATCH at a time (all, or `batches` batches);
    how many moved. Idempotent and resumable."""
    loans = Loan.get_pymongo_collection()
    history = ReturnedLoan.get_pymongo_collection()
    moved = done = 0
    while batches is None or done < batches:
        found = loans.find({"status": RETURNED}).sort("_id", 1).limit(BATCH)
        docs: list[dict[str, Any]] = [doc async for doc in found]
        if not docs:
            break
        # A returned loan holds no pair key (one closed by an older version may still have it).
        copies = [{k: v for k, v in doc.items() if k != "active_key"} for doc in docs]
        await history.bulk_write(
            [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in copies], ordered=False
        )
        # Only as copied: a loan changed meanwhile (its fine, its reader) stays for the next.
        exactly = [
            {"_id": d["_id"], "fine_cents": d.get("fine_cents"), "user_id": d.get("user_id")}
            for d in docs
        ]
        deleted = await loans.delete_many({"status": RETURNED, "$or": exactly})
        moved += deleted.deleted_count
        done += 1
        if len(docs) < BATCH:
            break
        await asyncio.sleep(0)
    return moved


async def left_to_move() -> bool:
    """Whether any returned loan is still in `loans` (start-up asks before migrating)."""
    found = await Loan.get_pymongo_collection().find_one({"status": RETURNED}, {"_id": 1})
    return found is not None


async def migrate() -> int:
    """The start-up migration: every returned loan still in `loans` moves, batch by batch,
    logged; a failure is logged on one line and the next scan or start-up resumes."""
    moved = 0
    try:
        while step := await archive_returned(batches=1):
            moved += step
            logger.info("loan history: moved %d returned loans so far", moved)
    except Exception as exc:
        logger.error(
            "loan history: migration stopped after %d loans (%s: %s); the next scan or "
            "start-up resumes it",
            moved,
            type(exc).__name__,
            exc,
        )
        return moved
    if moved:
        logger.info("loan history: moved %d returned loans to loan_history", moved)
    return moved


async def find_loan(query: dict[str, Any]) -> Loan | None:
    """The loan `query` (an `_id` and maybe an owner) names, active or returned."""
    raw = await Loan.get_pymongo_collection().find_one(query)
    if raw is None:
        raw = await ReturnedLoan.get_pymongo_collection().find_one(query)
    return None if raw is None else Loan.model_validate(raw)


async def is_returned(*, loan_id: PydanticObjectId) -> bool:
    """Whether the loan is in the history (its first look, in `loans`, missed)."""
    found = await ReturnedLoan.get_pymongo_collection().find_one({"_id": loan_id}, {"_id": 1})
    return found is not None


async def record_fine(*, loan_id: PydanticObjectId, amount: int) -> None:
    """The fine of a returned loan, on whichever copy it has (both when in both)."""
    change = {"$set": {"fine_cents": amount}}
    result = await Loan.get_pymongo_collection().update_one({"_id": loan_id}, change)
    if result.matched_count == 0:
        await ReturnedLoan.get_pymongo_collection().update_one({"_id": loan_id}, change)


async def list_loans(
    *,
    user_id: PydanticObjectId | str | None,
    book_id: PydanticObjectId | str | None,
    status: LoanFilter | None,
    skip: int,
    limit: int,
) -> tuple[list[Loan], int]:
    """A page of loans, newest first; a malformed id filter matches nothing.

    Active and overdue loans are in `loans` alone; returned ones, or every status, read
    both collections: the first `skip + limit` of each, merged and told apart by `_id`.
    """
    ids = id_filters(user_id=user_id, book_id=book_id)
    if ids is None:
        return [], 0
    query: dict[str, Any] = dict(ids)
    if status == LoanFilter.overdue:
        query.update(status=LoanStatus.active.value, due_at={"$lt": clock.now()})
    elif status is not None:
        query["status"] = status.value
    loans = Loan.get_pymongo_collection()
    total = await loans.count_documents(query)
    if status in (None, LoanFilter.returned):
        return await _with_history(query, skip, limit, total)
    found = loans.find(query, sort=NEWEST_FIRST, skip=skip, limit=limit)
    return [Loan.model_validate(doc) async for doc in found], total


async def _with_history(
    query: dict[str, Any], skip: int, limit: int, in_loans: int
) -> tuple[list[Loan], int]:
    loans = Loan.get_pymongo_collection()
    history = ReturnedLoan.get_pymongo_collection()
    # Returned loans still in `loans` are few (those since the last move); any also in the
    # history (a move cut off) counts once.
    found = await loans.find({**query, "status": RETURNED}, {"_id": 1}).to_list(None)
    waiting = [doc["_id"] for doc in cast(list[IdRow], found)]
    both = await history.count_documents({"_id": {"$in": waiting}}) if waiting else 0
    total = in_loans + await history.count_documents(query) - both
    if skip >= total:
        # A page past the end is empty, however far: nothing is read for it.
        return [], total
    head = min(skip + limit, total)
    merged: dict[Any, dict[str, Any]] = {}
    for collection in (loans, history):
        async for doc in collection.find(query, sort=NEWEST_FIRST, limit=head):
            merged.setdefault(doc["_id"], doc)
    newest = sorted(merged.values(), key=lambda d: (d["borrowed_at"], d["_id"]), reverse=True)
    return [Loan.model_validate(doc) for doc in newest[skip:head]], total
