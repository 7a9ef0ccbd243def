"""Circulation: borrowing, returning and renewing.

There are no transactions: every step is one conditional update on one document (the copy
and slot counters move through the transitions of copies/), taken in an order that
never over-lends, and a borrow that fails part-way undoes what it took with their inverses.
The counters stay exact between requests; consistency.py recomputes them to prove it, and
repairs them after a request cut off between its writes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

from beanie import PydanticObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .. import clock
from ..books.models import Book
from ..config import Settings
from ..copies import service as copies
from ..copies import slots
from ..db import doc_id, object_id, pair_key
from ..errors import AppError, not_found
from ..fines import service as fines
from ..reservations import service as reservations
from ..users.models import Role, User
from . import history, rules
from .models import DatesRow, Loan, LoanStatus, OutRow
from .rules import BorrowFacts

logger = logging.getLogger("library_api")

ACTIVE = LoanStatus.active.value


async def _book_exists(book_id: PydanticObjectId) -> bool:
    return await Book.get_pymongo_collection().find_one({"_id": book_id}, {"_id": 1}) is not None


async def _has_overdue(user_id: PydanticObjectId, now: datetime) -> bool:
    found = await Loan.get_pymongo_collection().find_one(
        rules.overdue_clause(user_id, now), {"_id": 1}
    )
    return found is not None


async def loans_out(
    *, book_id: PydanticObjectId, overdue_of: PydanticObjectId | None, now: datetime
) -> list[rules.OnLoan]:
    """The book's active loans and, if `overdue_of` names a reader, that reader's overdue
    ones, soonest due first: one query."""
    wanted: dict[str, Any] = {"book_id": book_id, "status": ACTIVE}
    if overdue_of is not None:
        wanted = {"$or": [wanted, rules.overdue_clause(overdue_of, now)]}
    found = Loan.get_pymongo_collection().find(
        wanted, {"user_id": 1, "book_id": 1, "due_at": 1}, sort=[("due_at", 1), ("_id", 1)]
    )
    return [
        rules.OnLoan(
            id=PydanticObjectId(raw["_id"]),
            user_id=PydanticObjectId(raw["user_id"]),
            book_id=PydanticObjectId(raw["book_id"]),
            due_at=raw["due_at"],
        )
        for raw in cast(list[OutRow], await found.to_list(None))
    ]


async def _slot_unless_overdue(
    borrower: User, loan_id: PydanticObjectId, now: datetime, limit: int, due_at: datetime
) -> tuple[bool, bool]:
    """(has overdue loans, took a loan slot), both asked at once; the overdue check only
    when the reader's record cannot rule it out (`rules.none_overdue`)."""
    user_id = doc_id(borrower)
    take = slots.take_loan_slot(user_id=user_id, loan_id=loan_id, limit=limit, due_at=due_at)
    if rules.none_overdue(borrower, now):
        return False, await take
    overdue, slot = await asyncio.gather(_has_overdue(user_id, now), take, return_exceptions=True)
    if isinstance(overdue, BaseException):
        if slot is True:
            await slots.release_loan_slot(user_id=user_id, loan_id=loan_id)
        raise overdue
    if isinstance(slot, BaseException):
        raise slot
    return overdue, slot


async def _take_copy(
    *, book_id: PydanticObjectId, user_id: PydanticObjectId, settings: Settings, retry: bool = True
) -> tuple[copies.Lent, PydanticObjectId | None] | None:
    """Take a shelf copy, or the reader's held one; (book, fulfilled reservation) or None.

    Lapsed holds are expired on the way; availability's `Queue.copy_for` (after
    `reservations.rules.settle`) is the same rule on a snapshot."""
    book = await copies.take_shelf_copy(book_id=book_id)
    if book is not None and book["held_copies"] == 0:
        return book, None
    if book is None:
        # Unknown book, or none on the shelf: only a held copy (if any) could still be ours.
        held = await copies.held_copies(book_id=book_id)
        if held is None:
            raise not_found("Book")
        if held == 0:
            return None
    hold = await reservations.claim_ready(book_id=book_id, user_id=user_id)
    if book is not None:
        # The reader's own held copy is the one to lend: the other one is free again, for the
        # queue (another reader may have joined it, seeing no copy on the shelf) or the shelf.
        if hold is not None and await copies.release_held_copy(book_id=book_id) == copies.HELD:
            await reservations.place_held_copy(book_id=book_id, settings=settings)
        return book, hold
    if hold is None:
        # A lapsed hold may be keeping a copy: expire it here rather than wait for the scan;
        # the copy moves on (to the shelf, to the next reader, maybe to this one).
        if retry and await reservations.expire_book_holds(book_id=book_id, settings=settings):
            return await _take_copy(
                book_id=book_id, user_id=user_id, settings=settings, retry=False
            )
        return None
    book = await copies.take_held_copy(book_id=book_id)
    if book is None:
        await reservations.unclaim(reservation_id=hold)
        return None
    return book, hold


async def _give_back_copy(
    book_id: PydanticObjectId, hold: PydanticObjectId | None, settings: Settings
) -> None:
    """Undo `_take_copy`: the inverse transition, and the hold unclaimed."""
    if hold is None:
        if await copies.untake_shelf_copy(book_id=book_id) == copies.HELD:
            await reservations.place_held_copy(book_id=book_id, settings=settings)
        return
    await copies.untake_held_copy(book_id=book_id)
    await reservations.unclaim(reservation_id=hold)


async def _refusal(
    book_id: PydanticObjectId, borrower: User, known: BorrowFacts, settings: Settings
) -> AppError:
    """The answer to a refused borrow: the first code of `rules.borrow_blockers` for what
    the failed step learnt, and whether the reader has the book when that outranks it."""
    if not known.no_copy and not await _book_exists(book_id):
        return not_found("Book")
    code = rules.borrow_blockers(known)[0]
    # No copy is the refusal a crowd gets: spare it the read when the reader had no loans
    # when the request began, so cannot have this one (the counter runs ahead of the loans).
    may_have_it = not known.no_copy or borrower.active_loans > 0
    if (
        rules.outranks("already_borrowed", code)
        and may_have_it
        and await copies.has_on_loan(user_id=doc_id(borrower), book_id=book_id)
    ):
        code = "already_borrowed"
    return rules.refused(code, settings)


def _names(actor: User, user_id: str) -> bool:
    try:
        return object_id(user_id, "User") == actor.id
    except AppError:
        return False


async def _borrower(*, actor: User, user_id: str | None) -> User:
    if user_id is None or _names(actor, user_id):
        return actor
    if not actor.role.at_least(Role.librarian):
        # The role decides first, whatever the id (malformed, unknown or someone's): a member
        # learns nothing about other ids.
        raise AppError(403, "forbidden", "A member may only borrow for itself")
    user = await User.get(object_id(user_id, "User"))
    if user is None:
        raise not_found("User")
    if not user.is_active:
        raise AppError(409, "account_disabled", "This account has been deactivated")
    return user


async def borrow(
    *,
    book_id: PydanticObjectId,
    actor: User,
    user_id: str | None,
    settings: Settings,
) -> Loan:
    """Lend a copy to the actor (or, for a librarian, to the reader `user_id` names).

    Three commands in the common case: the reader's loan slot, a copy, the loan itself. The
    overdue check is a fourth, sent beside the slot, only for a reader whose record cannot
    rule it out (see `rules.none_overdue`).
    """
    borrower = await _borrower(actor=actor, user_id=user_id)
    reader = doc_id(borrower)
    # Named before it is written: the reader's slot records it (slots.take_loan_slot).
    loan_id = PydanticObjectId()
    now = clock.now()
    undo: list[Callable[[], Awaitable[object]]] = []
    try:
        due_at = now + timedelta(days=settings.loan_days)
        overdue, slot = await _slot_unless_overdue(
            borrower, loan_id, now, settings.max_active_loans, due_at
        )
        if slot:
            undo.append(lambda: slots.release_loan_slot(user_id=reader, loan_id=loan_id))
        if overdue:
            raise await _refusal(book_id, borrower, BorrowFacts(overdue=True), settings)
        # Second in precedence: only a reader with no overdue loan hears about fines.
        if fines.is_blocked(reader=borrower, settings=settings):
            raise await _refusal(book_id, borrower, BorrowFacts(fined=True), settings)
        if not slot:
            raise await _refusal(book_id, borrower, BorrowFacts(at_limit=True), settings)
        taken = await _take_copy(book_id=book_id, user_id=reader, settings=settings)
        if taken is None:
            raise await _refusal(book_id, borrower, BorrowFacts(no_copy=True), settings)
        book, hold = taken
        undo.append(lambda: _give_back_copy(book_id, hold, settings))
        loan = Loan(
            id=loan_id,
            book_id=book_id,
            user_id=reader,
            book_title=book["title"],
            borrowed_at=now,
            due_at=due_at,
            active_key=pair_key(reader, book_id),
        )
        try:
            await loan.insert()
        except DuplicateKeyError:
            raise rules.refused("already_borrowed", settings) from None
    except BaseException:
        for step in reversed(undo):
            try:
                await step()
            except Exception as exc:
                logger.error(
                    "could not undo a borrow step (%s: %s); the consistency check repairs "
                    "it at its next run",
                    type(exc).__name__,
                    exc,
                )
        raise
    return loan


async def _close(query: dict[str, Any]) -> Loan | None:
    raw = await Loan.get_pymongo_collection().find_one_and_update(
        {**query, "status": ACTIVE},
        {
            "$set": {"status": LoanStatus.returned.value, "returned_at": clock.now()},
            "$unset": {"active_key": ""},
        },
        return_document=ReturnDocument.AFTER,
    )
    return None if raw is None else Loan.model_validate(raw)


async def _hand_on(loan: Loan, settings: Settings) -> None:
    """After a return: the reader's slot frees, the copy goes to the queue or the shelf, and
    a late return is fined (once: only the request whose update returned the loan gets here).
    """
    _, _, fine = await asyncio.gather(
        slots.release_loan_slot(user_id=loan.user_id, loan_id=doc_id(loan)),
        reservations.hand_on_returned_copy(book_id=loan.book_id, settings=settings),
        _fine(loan, settings),
    )
    loan.fine_cents = fine


async def _fine(loan: Loan, settings: Settings) -> int:
    assert loan.returned_at is not None
    amount = await fines.charge_late_return(
        loan_id=doc_id(loan),
        user_id=loan.user_id,
        book_title=loan.book_title,
        due_at=loan.due_at,
        returned_at=loan.returned_at,
        settings=settings,
    )
    if amount:
        await history.record_fine(loan_id=doc_id(loan), amount=amount)
    return amount


async def return_book(*, book_id: PydanticObjectId, user: User, settings: Settings) -> Loan:
    """Return the caller's active loan of a book."""
    loan = await _close({"book_id": book_id, "user_id": doc_id(user)})
    if loan is None:
        if not await _book_exists(book_id):
            raise not_found("Book")
        raise AppError(409, "no_active_loan", "You have no active loan of this book")
    await _hand_on(loan, settings)
    return loan


def _owned(query: dict[str, Any], actor: User) -> dict[str, Any]:
    if not actor.role.at_least(Role.librarian):
        return {**query, "user_id": doc_id(actor)}
    return query


async def get_loan(*, loan_id: PydanticObjectId, actor: User) -> Loan:
    """A loan its owner or a librarian may see; anyone else is told it does not exist."""
    loan = await history.find_loan(_owned({"_id": loan_id}, actor))
    if loan is None:
        raise not_found("Loan")
    return loan


def _already_returned() -> AppError:
    return AppError(409, "already_returned", "This loan has been returned")


async def return_loan(*, loan_id: PydanticObjectId, actor: User, settings: Settings) -> Loan:
    loan = await _close(_owned({"_id": loan_id}, actor))
    if loan is None:
        await get_loan(loan_id=loan_id, actor=actor)
        raise _already_returned()
    await _hand_on(loan, settings)
    return loan


async def set_due_date(*, loan_id: PydanticObjectId, due_at: datetime) -> Loan:
    """A librarian's correction or extension of an active loan's due date (not a renewal).

    Overdue state, notices and the fine at its return all follow the loan's `due_at`.
    """
    loans = Loan.get_pymongo_collection()
    found = await loans.find_one({"_id": loan_id}, {"borrowed_at": 1, "status": 1, "user_id": 1})
    raw = cast(DatesRow | None, found)
    if raw is None:
        if await history.is_returned(loan_id=loan_id):
            raise _already_returned()
        raise not_found("Loan")
    if raw["status"] != ACTIVE:
        raise _already_returned()
    if due_at <= raw["borrowed_at"]:
        raise AppError(422, "validation_error", "due_at must be after the loan's borrowed_at")
    # Forgotten first: between the two writes the reader's record claims nothing.
    await slots.forget_due_dates(user_id=PydanticObjectId(raw["user_id"]))
    changed = await loans.find_one_and_update(
        {"_id": loan_id, "status": ACTIVE},
        {"$set": {"due_at": due_at}},
        return_document=ReturnDocument.AFTER,
    )
    if changed is None:
        raise _already_returned()
    loan: Loan = Loan.model_validate(changed)
    return loan


async def renew(*, loan_id: PydanticObjectId, actor: User, settings: Settings) -> Loan:
    """Move the due date LOAN_DAYS past the later of now and the current due date."""
    loans = Loan.get_pymongo_collection()
    while True:
        loan = await get_loan(loan_id=loan_id, actor=actor)
        now = clock.now()
        if loan.status != LoanStatus.active:
            raise _already_returned()
        if loan.renewals >= settings.max_renewals:
            raise AppError(409, "renewal_limit_reached", "This loan cannot be renewed again")
        if loan.due_at < now and not actor.role.at_least(Role.librarian):
            raise AppError(409, "loan_overdue", "An overdue loan is renewed only by a librarian")
        if not actor.role.at_least(Role.librarian):
            fines.check_not_blocked(reader=actor, settings=settings)
        if await reservations.others_waiting(book_id=loan.book_id, user_id=loan.user_id):
            raise AppError(409, "reserved_by_others", "Other readers are waiting for this book")
        # The state read above is the precondition: a concurrent renewal or return makes
        # this update miss, and the loop judges the loan again.
        raw = await loans.find_one_and_update(
            {
                "_id": loan_id,
                "status": ACTIVE,
                "renewals": loan.renewals,
                "due_at": loan.due_at,
            },
            {
                "$set": {"due_at": max(now, loan.due_at) + timedelta(days=settings.loan_days)},
                "$inc": {"renewals": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if raw is not None:
            renewed: Loan = Loan.model_validate(raw)
            await slots.renew_due_date(
                user_id=renewed.user_id, loan_id=loan_id, was=loan.due_at, due_at=renewed.due_at
            )
            return renewed
