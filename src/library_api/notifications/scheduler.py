"""The periodic notification scan, a background task of every API instance.

Each run first takes the `notification-scan` lease (free, expired or already its own), so
one instance scans at a time; the holder keeps renewing it on each run, and another
instance takes over once a holder stops renewing (it stopped or died) and the lease expires.
"""

import asyncio
import logging
import os
import socket
from contextlib import suppress
from datetime import timedelta
from uuid import uuid4

from ..config import Settings
from . import service

logger = logging.getLogger("library_api")

SCAN_LEASE = "notification-scan"
# Beyond the interval, so the holder's next run renews the lease before anyone else may
# take it, and long enough to cover a slow scan (SMTP timeouts included).
LEASE_MARGIN = timedelta(minutes=2)


def start_scanner(*, settings: Settings) -> "asyncio.Task[None] | None":
    """Start scanning every NOTIFY_INTERVAL_SECONDS (0: never, returns None)."""
    if settings.notify_interval_seconds <= 0:
        return None
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
    return asyncio.create_task(_run(settings, holder), name="notification-scan")


async def stop_scanner(task: "asyncio.Task[None] | None") -> None:
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _run(settings: Settings, holder: str) -> None:
    interval = settings.notify_interval_seconds
    ttl = timedelta(seconds=interval) + LEASE_MARGIN
    try:
        while True:
            try:
                if await service.take_lease(name=SCAN_LEASE, holder=holder, ttl=ttl):
                    created = await service.scan(settings=settings)
                    logger.info("notification scan created %d notifications", created)
            except Exception:
                # A failed run (database down, …) must not end the task: the next one retries.
                logger.exception("notification scan failed")
            await asyncio.sleep(interval)
    finally:
        # Hand over at once on shutdown rather than after the lease expires.
        with suppress(Exception):
            await asyncio.wait_for(service.release_lease(name=SCAN_LEASE, holder=holder), 2)
