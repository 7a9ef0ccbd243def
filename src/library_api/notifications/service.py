"""Reading notifications: their owner lists them and marks them read.

Notifications are created by creation.py (at hand-overs) and scan.py, and mailed by outbox.py;
scheduler.py runs the periodic scan, which also moves those past their use to the archive
(archive.py); stream.py sends new ones live, with the reads below.
"""

from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.cursor import AsyncCursor

from .. import clock
from ..db import IdRow
from ..errors import not_found
from .models import ArchivedNotification, Notification

NEWEST_FIRST = [("created_at", -1), ("_id", -1)]


async def list_notifications(
    *, user_id: PydanticObjectId, unread: bool | None, skip: int, limit: int
) -> tuple[list[Notification], int]:
    """A page of the reader's notifications, newest first, from both collections (archive.py).

    A notification found in both (a move cut off) is the one in `notifications`: the archive
    is read without the reader's ids there, which are few (what may still be used).
    """
    mine: dict[str, Any] = {"user_id": user_id}
    query = dict(mine)
    if unread is True:
        query["read_at"] = None
    elif unread is False:
        query["read_at"] = {"$ne": None}
    current = Notification.get_pymongo_collection()
    archive = ArchivedNotification.get_pymongo_collection()
    found: AsyncCursor[IdRow] = current.find(mine, {"_id": 1})
    kept = [row["_id"] async for row in found]
    archived = {**query, "_id": {"$nin": kept}}
    total = await current.count_documents(query) + await archive.count_documents(archived)
    if skip >= total:
        # A page past the end is empty, however far: nothing is read for it.
        return [], total
    head = min(skip + limit, total)
    docs: list[dict[str, Any]] = []
    for collection, wanted in ((current, query), (archive, archived)):
        docs += await collection.find(wanted, sort=NEWEST_FIRST, limit=head).to_list(None)
    docs.sort(key=lambda doc: (doc["created_at"], doc["_id"]), reverse=True)
    return [Notification.model_validate(doc) for doc in docs[skip:head]], total


async def mark_read(
    *, user_id: PydanticObjectId, notification_id: PydanticObjectId
) -> Notification:
    """Set `read_at` once, wherever it is kept; reading again returns it unchanged."""
    mine = {"_id": notification_id, "user_id": user_id}
    for collection in (
        Notification.get_pymongo_collection(),
        ArchivedNotification.get_pymongo_collection(),
    ):
        raw = await collection.find_one_and_update(
            {**mine, "read_at": None},
            {"$set": {"read_at": clock.now()}},
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            raw = await collection.find_one(mine)
        if raw is not None:
            notification: Notification = Notification.model_validate(raw)
            return notification
    raise not_found("Notification")


# --- live notifications (stream.py) ---------------------------------------------------------


async def notifications_after(
    *, user_id: PydanticObjectId, after: ObjectId, limit: int
) -> list[Notification]:
    """The user's notifications whose id is above `after`, lowest id first."""
    return (
        await Notification.find({"user_id": user_id, "_id": {"$gt": after}})
        .sort("+_id")
        .limit(limit)
        .to_list()
    )


async def has_change_streams() -> bool:
    """Whether the deployment is a replica set (`hello` names one), which change streams need."""
    database = Notification.get_pymongo_collection().database
    hello = await database.client.admin.command("hello")
    return bool(hello.get("setName"))


Changes = AsyncChangeStream[dict[str, Any]]


async def watch_new(*, user_id: PydanticObjectId, max_wait_seconds: float) -> Changes:
    """A change stream of the user's notifications inserted from now on, on any instance.

    A read of it waits up to `max_wait_seconds` on the server for a change.
    """
    collection = Notification.get_pymongo_collection()
    return await collection.watch(
        [{"$match": {"operationType": "insert", "fullDocument.user_id": user_id}}],
        max_await_time_ms=max(1, int(max_wait_seconds * 1000)),
    )


async def next_inserted(changes: Changes, *, limit: int) -> list[Notification]:
    """The notifications the stream has seen inserted: at most one wait on the server for the
    first, then up to `limit` of those already there."""
    found: list[Notification] = []
    while len(found) < limit:
        change = await changes.try_next()
        if change is None:
            break
        if change.get("operationType") == "insert":
            found.append(Notification.model_validate(change["fullDocument"]))
    return found
