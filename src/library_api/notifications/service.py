"""Notifications: created at hand-overs and by the periodic scan, read by their owner."""

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from beanie import PydanticObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from .. import clock
from ..books.models import Book
from ..config import Settings
from ..db import doc_id
from ..errors import not_found
from ..loans.models import Loan, LoanStatus
from ..reservations.models import Reservation, ReservationStatus
from ..users.models import User
from . import mailer
from .models import Lease, Notification, NotificationKind

logger = logging.getLogger("library_api")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ready_message(title: str, ready_until: datetime | None) -> str:
    message = f'"{title}", which you reserved, is ready for you to pick up.'
    if ready_until is not None:
        message += f" It is held for you until {_when(ready_until)}."
    return message


async def _create(
    *,
    kind: NotificationKind,
    user_id: PydanticObjectId,
    message: str,
    loan_id: PydanticObjectId | None = None,
    reservation_id: PydanticObjectId | None = None,
) -> bool:
    """Store one notification; False when it already exists (the unique key says so)."""
    subject = loan_id if loan_id is not None else reservation_id
    assert subject is not None
    now = clock.now()
    notification = Notification(
        key=Notification.key_for(kind, subject),
        user_id=user_id,
        kind=kind,
        loan_id=loan_id,
        reservation_id=reservation_id,
        message=message,
        created_at=now,
        next_mail_at=now,
    )
    try:
        await notification.insert()
    except DuplicateKeyError:
        return False
    return True


async def _book_title(book_id: PydanticObjectId) -> str:
    raw = await Book.get_pymongo_collection().find_one({"_id": book_id}, {"title": 1})
    return str(raw["title"]) if raw is not None else "The book"


async def announce_ready(*, reservation: Reservation) -> None:
    """The reader's `reservation_ready` notification, at most once per reservation.

    Called at the hand-over, after the reservation became ready. It never raises: the
    hand-over has happened already, and the next scan creates whatever is missing here.
    """
    try:
        await _create(
            kind=NotificationKind.reservation_ready,
            user_id=reservation.user_id,
            reservation_id=doc_id(reservation),
            message=ready_message(await _book_title(reservation.book_id), reservation.ready_until),
        )
    except PyMongoError:
        logger.exception("could not store the reservation_ready notification; the scan will")


# --- the scan -------------------------------------------------------------------------

DUE_SOON_WINDOW = timedelta(hours=24)
_BATCH = 200


def due_soon_message(title: str, due_at: datetime) -> str:
    return f'"{title}" is due back on {_when(due_at)}. Return or renew it by then.'


def overdue_message(title: str, due_at: datetime) -> str:
    return f'"{title}" was due back on {_when(due_at)} and is overdue. Please return it.'


async def _existing_keys(keys: list[str]) -> set[str]:
    found = Notification.get_pymongo_collection().find({"key": {"$in": keys}}, {"key": 1})
    return {raw["key"] async for raw in found}


async def _notify_loans(*, kind: NotificationKind, query: dict[str, Any]) -> int:
    describe = due_soon_message if kind is NotificationKind.due_soon else overdue_message
    fields = {"user_id": 1, "book_title": 1, "due_at": 1}
    loans = Loan.get_pymongo_collection().find(query, fields).sort("_id", 1)
    created = 0
    batch: list[dict[str, Any]] = []

    async def flush() -> int:
        # Read first, insert only what is missing: a rescan costs reads, not failed writes.
        keys = {Notification.key_for(kind, raw["_id"]): raw for raw in batch}
        done = await _existing_keys(list(keys))
        count = 0
        for key, raw in keys.items():
            if key not in done and await _create(
                kind=kind,
                user_id=raw["user_id"],
                loan_id=raw["_id"],
                message=describe(raw["book_title"], raw["due_at"]),
            ):
                count += 1
        batch.clear()
        return count

    async for raw in loans:
        batch.append(raw)
        if len(batch) >= _BATCH:
            created += await flush()
    if batch:
        created += await flush()
    return created


async def _notify_ready_holds() -> int:
    """The safety net for hand-overs whose `announce_ready` did not get through."""
    fields = {"user_id": 1, "book_id": 1, "ready_until": 1}
    holds = await (
        Reservation.get_pymongo_collection()
        .find({"status": ReservationStatus.ready}, fields)
        .to_list()
    )
    if not holds:
        return 0
    keys = {Notification.key_for(NotificationKind.reservation_ready, h["_id"]): h for h in holds}
    done = await _existing_keys(list(keys))
    missing = [h for key, h in keys.items() if key not in done]
    titles = {
        raw["_id"]: str(raw["title"])
        async for raw in Book.get_pymongo_collection().find(
            {"_id": {"$in": list({h["book_id"] for h in missing})}}, {"title": 1}
        )
    }
    created = 0
    for hold in missing:
        title = titles.get(hold["book_id"], "The book")
        if await _create(
            kind=NotificationKind.reservation_ready,
            user_id=hold["user_id"],
            reservation_id=hold["_id"],
            message=ready_message(title, hold.get("ready_until")),
        ):
            created += 1
    return created


async def scan(*, settings: Settings) -> int:
    """Expire lapsed holds, create every missing notification, mail what is pending.

    Returns how many notifications this call created. A loan that is already past due
    gets `overdue` only: a `due_soon` after the due time would tell the reader nothing.
    """
    # Imported here: the reservations service imports this module for `announce_ready`.
    from ..reservations import service as reservations_service

    await reservations_service.expire_holds(settings=settings)
    now = clock.now()
    active = {"status": LoanStatus.active}
    created = await _notify_loans(
        kind=NotificationKind.overdue, query={**active, "due_at": {"$lt": now}}
    )
    created += await _notify_loans(
        kind=NotificationKind.due_soon,
        query={**active, "due_at": {"$gte": now, "$lte": now + DUE_SOON_WINDOW}},
    )
    created += await _notify_ready_holds()
    if settings.smtp_url:
        await send_pending_mail(settings=settings)
    return created


# --- mail -----------------------------------------------------------------------------

# Notifications claimed at once and sent over one SMTP session.
MAIL_BATCH = 50
# A scan claims no new batch after this long; the rest waits for the next scan.
MAIL_TIME_BUDGET = timedelta(seconds=60)
# A claim outlives any SMTP timeout; after it a crashed sender's notification is tried again.
MAIL_CLAIM = timedelta(minutes=10)
MAX_MAIL_ATTEMPTS = 8
# Older notifications are not mailed any more (e.g. a backlog from before SMTP_URL was set).
MAIL_MAX_AGE = timedelta(days=7)

_SUBJECTS = {
    NotificationKind.due_soon: "A loan is due soon",
    NotificationKind.overdue: "A loan is overdue",
    NotificationKind.reservation_ready: "Your reservation is ready",
}


def mail_backoff(attempts: int) -> timedelta:
    """Wait before attempt `attempts + 1`: 5 min, 10 min, 20 min, … at most 6 h."""
    return min(timedelta(minutes=5) * (1 << max(attempts - 1, 0)), timedelta(hours=6))


async def _claim_for_mail(token: str) -> Notification | None:
    now = clock.now()
    raw = await Notification.get_pymongo_collection().find_one_and_update(
        {
            "next_mail_at": {"$lte": now},
            "mailed_at": None,
            "created_at": {"$gte": now - MAIL_MAX_AGE},
            "$or": [{"mail_claimed_until": None}, {"mail_claimed_until": {"$lt": now}}],
        },
        {
            "$set": {"mail_claim": token, "mail_claimed_until": now + MAIL_CLAIM},
            "$inc": {"mail_attempts": 1},
        },
        sort=[("next_mail_at", 1)],
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        return None
    notification: Notification = Notification.model_validate(raw)
    return notification


async def _settle(notification: Notification, token: str, changes: dict[str, Any]) -> None:
    """Record how a claimed send ended, unless the claim was lost meanwhile."""
    await Notification.get_pymongo_collection().update_one(
        {"_id": notification.id, "mail_claim": token},
        {"$set": {**changes, "mail_claim": None, "mail_claimed_until": None}},
    )


async def _mailed(notification: Notification, token: str) -> None:
    await _settle(
        notification, token, {"mailed_at": clock.now(), "next_mail_at": None, "mail_error": None}
    )


async def _failed(notification: Notification, token: str, error: str) -> None:
    attempts = notification.mail_attempts
    retry = None if attempts >= MAX_MAIL_ATTEMPTS else clock.now() + mail_backoff(attempts)
    await _settle(notification, token, {"next_mail_at": retry, "mail_error": error[:500]})


async def _recipients(user_ids: set[PydanticObjectId]) -> dict[PydanticObjectId, tuple[str, str]]:
    found = User.get_pymongo_collection().find(
        {"_id": {"$in": list(user_ids)}, "is_active": True}, {"email": 1, "name": 1}
    )
    return {raw["_id"]: (str(raw["email"]), str(raw["name"])) async for raw in found}


async def send_pending_mail(
    *, settings: Settings, batch: int = MAIL_BATCH, budget: timedelta = MAIL_TIME_BUDGET
) -> int:
    """Mail the notifications due for mailing; returns how many went out. Never raises.

    Batch after batch until none is pending; no new batch once `budget` has passed."""
    if not settings.smtp_url:
        return 0
    token = uuid4().hex
    # Real elapsed time: the library clock is for dates, and tests move it.
    deadline = time.monotonic() + budget.total_seconds()
    sent = 0
    try:
        config = mailer.SmtpConfig.from_url(settings.smtp_url)
        while True:
            claimed: list[Notification] = []
            while len(claimed) < batch and (found := await _claim_for_mail(token)) is not None:
                claimed.append(found)
            if not claimed:
                break
            done, server_up = await _send_batch(config, settings, token, claimed)
            sent += done
            # Every claimed one is settled by now: no later claim picks it again.
            if not server_up or len(claimed) < batch or time.monotonic() >= deadline:
                break
    except Exception:
        logger.exception("mailing notifications failed; they stay queued")
    return sent


async def _send_batch(
    config: mailer.SmtpConfig, settings: Settings, token: str, claimed: list[Notification]
) -> tuple[int, bool]:
    """Send claimed notifications over one SMTP session: (how many went, server reachable)."""
    recipients = await _recipients({n.user_id for n in claimed})
    sent = 0
    pending = list(claimed)
    try:
        async with mailer.connect(config) as connection:
            while pending:
                notification = pending[0]
                recipient = recipients.get(notification.user_id)
                if recipient is None:
                    # Deleted or deactivated reader: nothing to retry.
                    await _settle(notification, token, {"next_mail_at": None})
                    pending.pop(0)
                    continue
                message = mailer.compose(
                    sender=settings.smtp_from,
                    to=recipient[0],
                    name=recipient[1],
                    subject=_SUBJECTS[notification.kind],
                    text=notification.message,
                    date=clock.now(),
                )
                try:
                    await connection.send(message)
                except mailer.MESSAGE_ERRORS as exc:
                    # The server refused this one message (e.g. its recipient); go on.
                    await _failed(notification, token, str(exc))
                else:
                    await _mailed(notification, token)
                    sent += 1
                pending.pop(0)
    except mailer.MAIL_ERRORS as exc:
        logger.warning("SMTP server unavailable (%s); %d mails will be retried", exc, len(pending))
        for notification in pending:
            await _failed(notification, token, str(exc) or type(exc).__name__)
        return sent, False
    return sent, True


# --- reading --------------------------------------------------------------------------


async def list_notifications(
    *, user_id: PydanticObjectId, unread: bool | None, skip: int, limit: int
) -> tuple[list[Notification], int]:
    query: dict[str, Any] = {"user_id": user_id}
    if unread is True:
        query["read_at"] = None
    elif unread is False:
        query["read_at"] = {"$ne": None}
    total = await Notification.find(query).count()
    items = (
        await Notification.find(query).sort("-created_at", "-_id").skip(skip).limit(limit).to_list()
    )
    return items, total


async def mark_read(
    *, user_id: PydanticObjectId, notification_id: PydanticObjectId
) -> Notification:
    """Set `read_at` once; reading again returns the notification unchanged."""
    collection = Notification.get_pymongo_collection()
    mine = {"_id": notification_id, "user_id": user_id}
    raw = await collection.find_one_and_update(
        {**mine, "read_at": None},
        {"$set": {"read_at": clock.now()}},
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        raw = await collection.find_one(mine)
    if raw is None:
        raise not_found("Notification")
    notification: Notification = Notification.model_validate(raw)
    return notification


# --- the lease that lets one instance at a time run the periodic scan -----------------


async def take_lease(*, name: str, holder: str, ttl: timedelta) -> bool:
    """Hold `name` for `ttl` if it is free, expired or already ours; one atomic upsert."""
    now = clock.now()
    try:
        await Lease.get_pymongo_collection().update_one(
            {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
            {"$set": {"holder": holder, "expires_at": now + ttl}},
            upsert=True,
        )
    except DuplicateKeyError:
        # Someone else holds it: the filter missed, and the upsert hit the existing _id.
        return False
    return True


async def release_lease(*, name: str, holder: str) -> None:
    await Lease.get_pymongo_collection().delete_one({"_id": name, "holder": holder})
