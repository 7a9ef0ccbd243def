"""Mailing notifications: claimed before each send, so none goes out twice; retried with a
back-off when the SMTP server fails. mailer.py speaks SMTP.
"""

import logging
import time
from datetime import timedelta
from typing import Any, TypedDict
from uuid import uuid4

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.cursor import AsyncCursor

from .. import clock
from ..config import Settings
from ..users.models import User
from . import mailer
from .models import Notification, NotificationKind

logger = logging.getLogger("library_api")

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


class _Recipient(TypedDict):
    """A reader read for mailing (`{"email": 1, "name": 1}`)."""

    _id: ObjectId
    email: str
    name: str


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


async def _recipients(user_ids: set[PydanticObjectId]) -> dict[ObjectId, tuple[str, str]]:
    found: AsyncCursor[_Recipient] = User.get_pymongo_collection().find(
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
