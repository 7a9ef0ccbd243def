"""The periodic notification scan, a background task of every API instance.

The scan is a job over several domains (lapsed holds expire and their copies move on, then
notifications are created and mailed), so it sits here, beside the routers, above the
services it calls: the reservations service announces ready holds through the notifications
domain, and no service of the notifications domain calls back into reservations.

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
from ..reservations import service as reservations
from . import lease, outbox, scan

logger = logging.getLogger("library_api")

SCAN_LEASE = "notification-scan"
# Beyond the interval, so the holder's next run renews the lease before anyone else may
# take it, and long enough to cover a slow scan (SMTP timeouts included).
LEASE_MARGIN = timedelta(minutes=2)


async def run_scan(*, settings: Settings) -> int:
    """Expire lapsed holds, create every missing notification, mail what is pending.

    Returns how many notifications this call created.
    """
    await reservations.expire_holds(settings=settings)
    created = await scan.create_missing()
    if settings.smtp_url:
        await outbox.send_pending_mail(settings=settings)
    return created


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
                if await lease.take_lease(name=SCAN_LEASE, holder=holder, ttl=ttl):
                    created = await run_scan(settings=settings)
                    logger.info("notification scan created %d notifications", created)
            except Exception:
                # A failed run (database down, …) must not end the task: the next one retries.
                logger.exception("notification scan failed")
            await asyncio.sleep(interval)
    finally:
        # Hand over at once on shutdown rather than after the lease expires.
        with suppress(Exception):
            await asyncio.wait_for(lease.release_lease(name=SCAN_LEASE, holder=holder), 2)
