"""Live notifications: `GET /notifications/stream` as Server-Sent Events.

Each open stream follows one user's notifications, whichever instance creates them:

- where the deployment is a replica set (`hello` names one), through a change stream of the
  inserts of that user's notifications (the server tells; a read waits on it up to one poll
  interval);
- otherwise, and whenever a change stream cannot be opened, by asking the database every
  `NOTIFY_STREAM_POLL_SECONDS` for the user's notifications whose ObjectId is within `WINDOW`
  of now. ObjectIds carry the creating instance's clock, and instances' clocks differ by
  seconds: rather than trust one strict order, each query looks a window back and the ids
  already sent are skipped.

`Last-Event-ID` first replays the user's notifications whose id is above it. A comment line
keeps the connection alive whenever the next wait could make the silence longer than
`NOTIFY_STREAM_HEARTBEAT_SECONDS`; the session and user are checked again (by the caller's
`still_allowed`) every `NOTIFY_STREAM_RECHECK_SECONDS`, and the stream ends when they fail,
when the client goes away, on a database error (the client resumes with `Last-Event-ID`), or
when the server's shutdown cancels it. `OpenStreams` bounds the streams of this process.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from beanie import PydanticObjectId
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import PyMongoError
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .. import clock
from ..config import Settings
from ..errors import AppError
from . import service
from .models import Notification
from .schemas import NotificationPublic

logger = logging.getLogger("library_api")

# How far back each poll looks: the clock difference between instances tolerated, plus the
# time an insert takes to become visible.
WINDOW = timedelta(seconds=30)
# Notifications read or sent per database command.
BATCH = 100
# What a client waits before reconnecting after the stream ends (the SSE `retry:` field).
RETRY_MS = 3000

OPENING = f"retry: {RETRY_MS}\n: notifications of this account follow\n\n"
HEARTBEAT = ": keep-alive\n\n"


def frame(notification: Notification) -> str:
    """One notification as an SSE event; its JSON is that of `GET /notifications/me` items."""
    data = NotificationPublic.of(notification).model_dump_json()
    return f"id: {notification.id}\nevent: notification\ndata: {data}\n\n"


def event_id(header: str | None) -> ObjectId | None:
    """`Last-Event-ID` as sent back by a client; anything but one of our ids is ignored."""
    try:
        return ObjectId(header.strip()) if header else None
    except (InvalidId, TypeError):
        return None


class OpenStreams:
    """How many streams this process has open, per user and in all."""

    def __init__(self) -> None:
        self.per_user: Counter[str] = Counter()
        self.total = 0

    def take(self, user: str, *, per_user: int, total: int) -> bool:
        if self.total >= total or self.per_user[user] >= per_user:
            return False
        self.per_user[user] += 1
        self.total += 1
        return True

    def give_back(self, user: str) -> None:
        self.per_user[user] -= 1
        if self.per_user[user] <= 0:
            del self.per_user[user]
        self.total -= 1


OPEN = OpenStreams()
# Retry-After of a refused stream: streams end when their clients go away.
RETRY_AFTER_SECONDS = 10


class EventStream(StreamingResponse):
    """The SSE response; its slot in `OPEN` is given back however the response ends."""

    def __init__(self, content: AsyncIterator[str], *, user: str) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            # No cache keeps it, no proxy buffers it (nginx reads X-Accel-Buffering).
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.user: str | None = user

    def release(self) -> None:
        if self.user is not None:
            OPEN.give_back(self.user)
            self.user = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def open_stream(user: str, content: AsyncIterator[str], settings: Settings) -> EventStream:
    """The response for `content`, or `429 too_many_streams` when a bound is reached."""
    if not OPEN.take(
        user, per_user=settings.notify_streams_per_user, total=settings.notify_streams_total
    ):
        raise AppError(
            429,
            "too_many_streams",
            "Too many notification streams are open; close one or try again later",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return EventStream(content, user=user)


class Source(Protocol):
    def catch_up(self, last: ObjectId | None) -> AsyncIterator[Notification]:
        """The user's notifications above `last`; with none, remember what exists as seen."""
        ...

    async def next_batch(self) -> list[Notification]:
        """The new notifications, after waiting about one poll interval when there are none."""
        ...

    async def close(self) -> None: ...


class Seen:
    """The ids already sent (or there before the stream opened), within `WINDOW` of now."""

    def __init__(self) -> None:
        self.ids: set[ObjectId] = set()

    def floor(self) -> ObjectId:
        return ObjectId.from_datetime(clock.now() - WINDOW)

    def fresh(self, notifications: list[Notification]) -> list[Notification]:
        new = [n for n in notifications if n.id not in self.ids]
        self.ids.update(n.id for n in new if n.id is not None)
        return new

    def prune(self, floor: ObjectId) -> None:
        self.ids = {i for i in self.ids if i > floor}


class Poll:
    def __init__(self, user_id: PydanticObjectId, settings: Settings) -> None:
        self.user_id = user_id
        self.interval = settings.notify_stream_poll_seconds
        self.seen = Seen()

    async def _after(self, after: ObjectId) -> AsyncIterator[list[Notification]]:
        while True:
            batch = await service.notifications_after(
                user_id=self.user_id, after=after, limit=BATCH
            )
            if batch:
                yield batch
            if len(batch) < BATCH or batch[-1].id is None:
                return
            after = batch[-1].id

    async def catch_up(self, last: ObjectId | None) -> AsyncIterator[Notification]:
        floor = self.seen.floor()
        async for batch in self._after(floor if last is None else min(last, floor)):
            for notification in self.seen.fresh(batch):
                if last is not None and notification.id is not None and notification.id > last:
                    yield notification
        self.seen.prune(floor)

    async def next_batch(self) -> list[Notification]:
        await asyncio.sleep(self.interval)
        floor = self.seen.floor()
        new = [n async for batch in self._after(floor) for n in self.seen.fresh(batch)]
        self.seen.prune(floor)
        return new

    async def close(self) -> None:
        return None


class Changes(Poll):
    """A change stream, opened before the catch-up query so that nothing falls between."""

    def __init__(
        self, user_id: PydanticObjectId, settings: Settings, changes: service.Changes
    ) -> None:
        super().__init__(user_id, settings)
        self.changes = changes

    async def next_batch(self) -> list[Notification]:
        new = self.seen.fresh(await service.next_inserted(self.changes, limit=BATCH))
        self.seen.prune(self.seen.floor())
        return new

    async def close(self) -> None:
        await self.changes.close()


_replica_set: bool | None = None


async def open_source(user_id: PydanticObjectId, settings: Settings) -> Source:
    global _replica_set
    if settings.notify_stream_change_streams:
        if _replica_set is None:
            _replica_set = await service.has_change_streams()
        if _replica_set:
            try:
                watch = await service.watch_new(
                    user_id=user_id, max_wait_seconds=settings.notify_stream_poll_seconds
                )
            except PyMongoError as exc:
                logger.warning("notification stream: no change stream (%s); polling", exc)
            else:
                return Changes(user_id, settings, watch)
    return Poll(user_id, settings)


async def events(
    *,
    user_id: PydanticObjectId,
    last_event_id: ObjectId | None,
    settings: Settings,
    still_allowed: Callable[[], Awaitable[bool]],
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """The stream's text, piece by piece, until it has to end (see the module's docstring).

    The opening comment follows the replay: from then on, every new notification is sent.
    """
    source: Source | None = None
    try:
        source = await open_source(user_id, settings)
        async for notification in source.catch_up(last_event_id):
            yield frame(notification)
        yield OPENING
        quiet_since = recheck_at = time.monotonic()
        recheck_at += settings.notify_stream_recheck_seconds
        # The longest a round can take: a heartbeat goes out before silence could pass the limit.
        heartbeat = settings.notify_stream_heartbeat_seconds - settings.notify_stream_poll_seconds
        while True:
            batch = await source.next_batch()
            for notification in batch:
                yield frame(notification)
            now = time.monotonic()
            if batch:
                quiet_since = now
            if await disconnected():
                return
            if now >= recheck_at:
                if not await still_allowed():
                    return
                recheck_at = time.monotonic() + settings.notify_stream_recheck_seconds
            if now - quiet_since >= heartbeat:
                yield HEARTBEAT
                quiet_since = now
    except PyMongoError as exc:
        logger.warning("notification stream of %s ended by a database error: %s", user_id, exc)
    finally:
        if source is not None:
            await source.close()
