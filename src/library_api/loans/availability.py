"""A borrow's and a reservation's outcome for one reader, told before either is tried.

Reads only (three queries, a fourth for the open fines when they can block, sent together)
and judges what it read by the rules the borrow and the reservation paths apply: loans/
rules.py, reservations/rules.py and the fines predicate. Lapsed holds are judged as the
next borrow or reservation would expire them (`reservations.rules.settle`), not expired here.
"""

import asyncio

from beanie import PydanticObjectId

from .. import clock
from ..books.schemas import Availability
from ..config import Settings
from ..copies import service as copies
from ..db import doc_id
from ..errors import not_found
from ..fines import service as fines
from ..reservations import rules as queue_rules
from ..reservations import service as reservations
from ..users.models import User
from . import rules, service
from .rules import BorrowFacts


async def get_availability(
    *, book_id: PydanticObjectId, reader: User, settings: Settings
) -> Availability:
    now = clock.now()
    me = doc_id(reader)
    # The overdue question rides on the book's loans query, unless the record rules it out.
    overdue_of = None if rules.none_overdue(reader, now) else me
    on_shelf, loans, holds = await asyncio.gather(
        copies.shelf_copies(book_id=book_id),
        service.loans_out(book_id=book_id, overdue_of=overdue_of, now=now),
        reservations.open_holds(book_id=book_id),
    )
    fined = fines.is_blocked(reader=reader, settings=settings)
    if on_shelf is None:
        raise not_found("Book")
    out = [loan for loan in loans if loan.book_id == book_id]  # soonest due first
    my_loan = next((loan for loan in out if loan.user_id == me), None)
    queue = queue_rules.settle(
        on_shelf=on_shelf,
        holds=holds,
        borrowers={loan.user_id for loan in out},
        now=now,
        settings=settings,
    )
    my_hold = queue.open_hold(me)
    position = queue.position(me)
    facts = BorrowFacts(
        overdue=any(loan.user_id == me and rules.is_overdue(loan.due_at, now) for loan in loans),
        fined=fined,
        has_book=my_loan is not None,
        at_limit=rules.at_loan_limit(reader, settings),
        no_copy=not queue.copy_for(me),
    )
    borrow = rules.borrow_blockers(facts)
    reserve = queue_rules.reserve_blockers(
        on_shelf=queue.on_shelf, has_loan=my_loan is not None, has_open=my_hold is not None
    )
    ready_on = None
    if position is not None and position <= len(out):
        ready_on = out[position - 1].due_at.date()
    return Availability.model_validate(
        {
            "book_id": str(book_id),
            "available_copies": queue.on_shelf,
            "waiting_reservations": len(queue.waiting),
            "can_borrow": not borrow,
            "borrow_blockers": borrow,
            "can_reserve": not reserve,
            "reserve_blockers": reserve,
            "my_loan_id": None if my_loan is None else str(my_loan.id),
            "my_reservation_id": None if my_hold is None else str(my_hold.id),
            "my_position": position,
            "estimated_ready_on": ready_on,
        }
    )
