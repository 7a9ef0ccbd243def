"""Reading notifications: their owner lists them and marks them read.

Notifications are created by creation.py (at hand-overs) and scan.py, and mailed by outbox.py;
scheduler.py runs the periodic scan.
"""

from typing import Any

from beanie import PydanticObjectId
from pymongo import ReturnDocument

from .. import clock
from ..errors import not_found
from .models import Notification


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
