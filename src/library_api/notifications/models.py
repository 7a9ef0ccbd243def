from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel


class NotificationKind(StrEnum):
    due_soon = "due_soon"
    overdue = "overdue"
    reservation_ready = "reservation_ready"


class Notification(Document):
    # "<kind>:<loan or reservation id>": the unique index makes a second copy impossible,
    # whichever scan, request or API instance tries to create it.
    key: str
    user_id: PydanticObjectId
    kind: NotificationKind
    loan_id: PydanticObjectId | None = None
    reservation_id: PydanticObjectId | None = None
    message: str
    created_at: datetime
    read_at: datetime | None = None

    # Mail delivery. `next_mail_at` is when a send may next be tried; None once mailed or
    # given up. A sender claims the notification (`mail_claim` + `mail_claimed_until`) with a
    # conditional update before talking to the SMTP server, so two senders never both send.
    next_mail_at: datetime | None = None
    mailed_at: datetime | None = None
    mail_attempts: int = 0
    mail_claim: str | None = None
    mail_claimed_until: datetime | None = None
    mail_error: str | None = None

    class Settings:
        name = "notifications"
        indexes = [
            IndexModel([("key", ASCENDING)], unique=True, name="one_per_kind_and_subject"),
            IndexModel(
                [("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                name="by_user_newest",
            ),
            IndexModel([("next_mail_at", ASCENDING)], name="mail_queue"),
            # The live stream's poll: a reader's notifications newer than an id.
            IndexModel([("user_id", ASCENDING), ("_id", ASCENDING)], name="by_user_id"),
        ]

    @staticmethod
    def key_for(kind: NotificationKind, subject_id: ObjectId) -> str:
        return f"{kind.value}:{subject_id}"


class ArchivedNotification(Notification):
    """A notification past its use, moved out of `notifications` into `notification_archive`
    with the same `_id` and fields (archive.py), so the collection every scan, mail and live
    stream reads holds what may still happen, not every notice ever sent."""

    class Settings:
        name = "notification_archive"
        indexes = [
            IndexModel(
                [("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                name="by_user_newest",
            ),
        ]


class Lease(Document):
    """A named lock with an expiry, so one API instance at a time runs a periodic job."""

    id: str  # type: ignore[assignment]
    holder: str
    expires_at: datetime

    class Settings:
        name = "leases"


class TitleRow(TypedDict):
    """A book read for the title a notification names (`{"title": 1}`)."""

    _id: ObjectId
    title: str


DOCUMENTS: list[type[Document]] = [Notification, ArchivedNotification, Lease]
