"""Reservations: the queue of readers waiting for a book, and where a freed copy goes.

Copy hand-over protocol (no transactions; the copy counters move only through
copies/service.py): a copy that is to go to the queue is first counted in the book's
`held_copies`, and only then promised to a reservation (`waiting -> ready`).
So a ready reservation always has its copy in `held_copies`, and whoever moves a ready
reservation on (its reader borrowing, cancelling, or expiry) with a conditional update owns
that copy from then on. `place_held_copy` gives such an unpromised held copy to the oldest
waiting reader, or puts it back on the shelf; `hand_on_returned_copy` does the same for a
copy coming back from a loan, and a PATCH raising `total_copies` counts the copies it adds
for waiting readers in `held_copies` in its own update before placing each here.
"""

from datetime import datetime, timedelta
from typing import Any, cast

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from .. import clock
from ..config import Settings, get_settings
from ..copies import service as copies
from ..db import PAIR_KEY_EXPRESSION, IdRow, doc_id, pair_key
from ..errors import AppError, not_found
from ..notifications.creation import announce_ready
from ..pagination import id_filters
from ..users.models import Role, User
from . import rules
from .models import BookRow, HoldRow, Reservation, ReservationStatus, StatusRow

WAITING = ReservationStatus.waiting.value
READY = ReservationStatus.ready.value
QUEUE_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]

Positioned = tuple[Reservation, int | None]


def _closing(status: ReservationStatus, now: datetime) -> dict[str, Any]:
    """The update that closes a reservation: it stops holding its reader's place."""
    return {
        "$set": {"status": status.value, "open": False, "closed_at": now},
        "$unset": {"open_key": ""},
    }


async def _anyone_waiting(book_id: PydanticObjectId) -> bool:
    found = await Reservation.get_pymongo_collection().find_one(
        {"book_id": book_id, "status": WAITING}, {"_id": 1}
    )
    return found is not None


async def others_waiting(*, book_id: PydanticObjectId, user_id: PydanticObjectId) -> bool:
    """Whether readers other than `user_id` wait for the book (a renewal would keep them)."""
    found = await Reservation.get_pymongo_collection().find_one(
        {"book_id": book_id, "status": WAITING, "user_id": {"$ne": user_id}}, {"_id": 1}
    )
    return found is not None


async def _shelve(book_id: PydanticObjectId) -> bool:
    """Put a held copy no reader was promised on the shelf; True when readers turned out to
    be waiting after all.

    A reservation placed meanwhile saw no copy on the shelf, and this hand-over saw no one
    waiting. Looking again after shelving (as `reserve` looks again after inserting) means
    one of the two always sees the other, so no copy stays on the shelf while readers wait.
    """
    await copies.shelve_held_copy(book_id=book_id)
    if not await _anyone_waiting(book_id):
        await copies.start_empty_queue(book_id=book_id)
        return False
    # Not held: a borrower took it first; the queue waits for the next copy.
    return await copies.hold_shelf_copy(book_id=book_id)


async def hand_on_returned_copy(*, book_id: PydanticObjectId, settings: Settings) -> None:
    """A returned copy (still counted in loaned_copies) goes to the queue or to the shelf.

    The book's `waiting_readers` decides in the same update that moves the copy: with no one
    counted, the shelf, and a reader who joins afterwards finds it there (`reserve` looks at
    the shelf after writing its reservation).
    """
    if await copies.give_back(book_id=book_id) == copies.HELD:
        await place_held_copy(book_id=book_id, settings=settings)


async def offer_shelf_copies(*, book_id: PydanticObjectId, settings: Settings) -> None:
    """Hand shelf copies to waiting readers, one at a time, while both last.

    For copies that reached the shelf by another way than a hand-over (a counter repair).
    """
    while await _anyone_waiting(book_id):
        if not await copies.hold_shelf_copy(book_id=book_id):
            return
        await place_held_copy(book_id=book_id, settings=settings)


async def place_held_copy(*, book_id: PydanticObjectId, settings: Settings) -> Reservation | None:
    """Promise an unpromised held copy to the oldest waiting reader, or shelve it.

    Returns the reservation that became ready, if any, after announcing it to its reader.
    """
    reservations = Reservation.get_pymongo_collection()
    while True:
        now = clock.now()
        raw = await reservations.find_one_and_update(
            {"book_id": book_id, "status": WAITING},
            {
                "$set": {
                    "status": READY,
                    "ready_at": now,
                    "ready_until": now + timedelta(days=settings.hold_pickup_days),
                }
            },
            sort=QUEUE_ORDER,
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            if await _shelve(book_id):
                continue
            return None
        reservation: Reservation = Reservation.model_validate(raw)
        await copies.leave_queue(book_id=book_id)
        if not await copies.has_on_loan(user_id=reservation.user_id, book_id=book_id):
            await announce_ready(reservation=reservation)
            return reservation
        # The reader took a shelf copy while waiting: the reservation has served its purpose.
        closed = await reservations.update_one(
            {"_id": reservation.id, "status": READY},
            _closing(ReservationStatus.fulfilled, now),
        )
        if closed.modified_count == 0:
            # Someone else moved it on first (its reader, a cancel, expiry): the copy is theirs.
            return None


async def claim_ready(
    *, book_id: PydanticObjectId, user_id: PydanticObjectId
) -> PydanticObjectId | None:
    """Mark the reader's ready, unlapsed reservation fulfilled; its held copy is the caller's."""
    now = clock.now()
    raw = await Reservation.get_pymongo_collection().find_one_and_update(
        {"book_id": book_id, "user_id": user_id, **rules.claimable_clause(now)},
        _closing(ReservationStatus.fulfilled, now),
        projection={"_id": 1},
    )
    return None if raw is None else PydanticObjectId(cast(IdRow, raw)["_id"])


async def unclaim(*, reservation_id: PydanticObjectId) -> None:
    """Undo `claim_ready` when the loan it was for could not be made."""
    await Reservation.get_pymongo_collection().update_one(
        {"_id": reservation_id, "status": ReservationStatus.fulfilled.value},
        # A pipeline: the key is made from the reservation's own ids.
        [
            {
                "$set": {
                    "status": READY,
                    "open": True,
                    "closed_at": None,
                    "open_key": PAIR_KEY_EXPRESSION,
                }
            }
        ],
    )


async def _expire(query: dict[str, Any], settings: Settings) -> int:
    reservations = Reservation.get_pymongo_collection()
    lapsed = {**query, **rules.lapsed_clause(clock.now())}
    expired = 0
    found = await reservations.find(lapsed, {"_id": 1, "book_id": 1}).to_list(None)
    for raw in cast(list[BookRow], found):
        moved = await reservations.update_one(
            {"_id": raw["_id"], **lapsed},
            _closing(ReservationStatus.expired, clock.now()),
        )
        if moved.modified_count:
            expired += 1
            await place_held_copy(book_id=PydanticObjectId(raw["book_id"]), settings=settings)
    return expired


async def expire_holds(*, settings: Settings | None = None) -> int:
    """Expire every ready reservation whose pickup time has passed; each copy moves on.

    Pass the running app's settings (HOLD_PICKUP_DAYS for the next reader's hold); without
    them the process settings are used.
    """
    return await _expire({}, settings or get_settings())


async def expire_book_holds(*, book_id: PydanticObjectId, settings: Settings) -> int:
    """`expire_holds` for one book, run lazily before decisions that depend on its copies."""
    return await _expire({"book_id": book_id}, settings)


async def open_holds(*, book_id: PydanticObjectId) -> list[rules.Hold]:
    """The book's open (waiting or ready) reservations, in queue order: one query."""
    found = Reservation.get_pymongo_collection().find(
        {"book_id": book_id, "status": {"$in": [WAITING, READY]}},
        {"user_id": 1, "status": 1, "ready_until": 1},
        sort=QUEUE_ORDER,
    )
    rows = cast(list[HoldRow], await found.to_list(None))
    return [
        rules.Hold(
            id=PydanticObjectId(raw["_id"]),
            user_id=PydanticObjectId(raw["user_id"]),
            status=raw["status"],
            ready_until=raw.get("ready_until"),
        )
        for raw in rows
    ]


async def positions(reservations: list[Reservation]) -> list[Positioned]:
    """Each reservation with its 1-based place in its book's queue (None unless waiting)."""
    books = {r.book_id for r in reservations if r.status == ReservationStatus.waiting}
    queues: dict[ObjectId, list[ObjectId]] = {}
    if books:
        found = Reservation.get_pymongo_collection().find(
            {"book_id": {"$in": list(books)}, "status": WAITING},
            {"_id": 1, "book_id": 1},
            sort=QUEUE_ORDER,
        )
        for raw in cast(list[BookRow], await found.to_list(None)):
            queues.setdefault(raw["book_id"], []).append(raw["_id"])
    placed: list[Positioned] = []
    for r in reservations:
        queue = queues.get(r.book_id, [])
        rid = doc_id(r)
        placed.append((r, queue.index(rid) + 1 if rid in queue else None))
    return placed


async def reserve(*, book_id: PydanticObjectId, user: User, settings: Settings) -> Positioned:
    """Join the book's queue; refused by `rules.reserve_blockers`, the first that applies."""
    await expire_book_holds(book_id=book_id, settings=settings)
    # Counted as waiting before the reservation exists (see copies.join_queue), and not
    # any more once it is refused. Any other failure keeps the count: the insert may have
    # landed (a timeout after the write), and a count one too high only costs a look.
    on_shelf = await copies.join_queue(book_id=book_id)
    if on_shelf is None:
        raise not_found("Book")
    user_id = doc_id(user)
    # Unasked facts stay False: a copy on the shelf outranks the loan, so it is not asked.
    has_loan = on_shelf == 0 and await copies.has_on_loan(user_id=user_id, book_id=book_id)
    blockers = rules.reserve_blockers(on_shelf=on_shelf, has_loan=has_loan, has_open=False)
    reservation = Reservation(
        book_id=book_id,
        user_id=user_id,
        created_at=clock.now(),
        open_key=pair_key(user_id, book_id),
    )
    if not blockers:
        try:
            await reservation.insert()
        except DuplicateKeyError:
            # The open reservation is the fact the unique index tells, as the insert meets it.
            blockers = rules.reserve_blockers(on_shelf=on_shelf, has_loan=has_loan, has_open=True)
    if blockers:
        await copies.leave_queue(book_id=book_id)
        raise rules.refused(blockers[0])
    # A return may have shelved a copy between our check and the insert, seeing no queue yet.
    if await copies.hold_shelf_copy(book_id=book_id):
        promoted = await place_held_copy(book_id=book_id, settings=settings)
        if promoted is not None and promoted.id == reservation.id:
            return promoted, None
    return (await positions([reservation]))[0]


async def _expiry_scope(ids: dict[str, PydanticObjectId]) -> dict[str, Any] | None:
    """The holds whose lapse a list filtered by `ids` could show; None for none.

    A lapsed hold changes its own status and, as its copy moves on, the next reader's status
    and the positions behind: so the filtered book, or every book the filtered reader has an
    open reservation for, or (no filter) every book, which the notification scan also does.
    """
    if "book_id" in ids:
        return {"book_id": ids["book_id"]}
    if "user_id" not in ids:
        return {}
    found = Reservation.get_pymongo_collection().find(
        {"user_id": ids["user_id"], "status": {"$in": [WAITING, READY]}}, {"book_id": 1}
    )
    books = [raw["book_id"] for raw in cast(list[BookRow], await found.to_list(None))]
    return {"book_id": {"$in": books}} if books else None


def _listing(query: dict[str, Any]) -> Any:
    return Reservation.find(query).sort("-created_at", "-_id")


async def list_reservations(
    *,
    user_id: PydanticObjectId | str | None,
    book_id: PydanticObjectId | str | None,
    status: ReservationStatus | None,
    skip: int,
    limit: int,
    settings: Settings,
) -> tuple[list[Positioned], int]:
    """A page of reservations, newest first.

    Lapsed holds are expired first where that could change what the page shows (see
    `_expiry_scope`), so a ready reservation past its pickup time is never listed as ready.
    """
    ids = id_filters(user_id=user_id, book_id=book_id)
    if ids is None:
        return [], 0
    scope = await _expiry_scope(ids)
    if scope is not None:
        await _expire(scope, settings)
    query: dict[str, Any] = dict(ids)
    if status is not None:
        query["status"] = status.value
    total = await Reservation.find(query).count()
    found: list[Reservation] = await _listing(query).skip(skip).limit(limit).to_list()
    return await positions(found), total


async def _cancel_one(query: dict[str, Any], settings: Settings) -> bool:
    """Cancel the open reservation `query` finds; a ready one's copy moves on. True if done."""
    raw = await Reservation.get_pymongo_collection().find_one_and_update(
        {**query, "open": True},
        _closing(ReservationStatus.cancelled, clock.now()),
        projection={"book_id": 1, "status": 1},
        return_document=ReturnDocument.BEFORE,
    )
    if raw is None:
        return False
    before = cast(StatusRow, raw)
    if before["status"] == WAITING:
        await copies.leave_queue(book_id=PydanticObjectId(before["book_id"]))
    elif before["status"] == READY:
        await place_held_copy(book_id=PydanticObjectId(before["book_id"]), settings=settings)
    return True


async def cancel(*, reservation_id: PydanticObjectId, actor: User, settings: Settings) -> None:
    """Cancel an open reservation; a ready one's copy goes to the next reader or the shelf."""
    mine = not actor.role.at_least(Role.librarian)
    query: dict[str, Any] = {"_id": reservation_id}
    if mine:
        query["user_id"] = doc_id(actor)
    if not await _cancel_one(query, settings):
        existing = await Reservation.get(reservation_id)
        if existing is None or (mine and existing.user_id != actor.id):
            raise not_found("Reservation")
        raise AppError(
            409, "reservation_closed", f"This reservation is already {existing.status.value}"
        )


async def cancel_open_for_user(*, user_id: PydanticObjectId, settings: Settings) -> int:
    """Cancel every open reservation of a reader (deactivated); how many were cancelled.

    Each is cancelled on its own, as `cancel` does it, so a ready one's copy goes to the next
    reader or the shelf, and one that its reader borrows meanwhile stays fulfilled.
    """
    found = Reservation.get_pymongo_collection().find(
        {"user_id": user_id, "open": True}, {"_id": 1}
    )
    cancelled = 0
    for raw in cast(list[IdRow], await found.to_list(None)):
        cancelled += await _cancel_one({"_id": raw["_id"]}, settings)
    return cancelled


async def cancel_for_book(*, book_id: PydanticObjectId) -> None:
    """Cancel every open reservation of a deleted book (its held copies went with it)."""
    await Reservation.get_pymongo_collection().update_many(
        {"book_id": book_id, "open": True},
        _closing(ReservationStatus.cancelled, clock.now()),
    )
