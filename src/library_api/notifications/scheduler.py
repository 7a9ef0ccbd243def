"""The periodic jobs of every API instance: the notification scan and the consistency check.

The scan is a job over several domains (lapsed holds expire and their copies move on, then
notifications are created and mailed), so it sits here, beside the routers, above the
services it calls: the reservations service announces ready holds through the notifications
domain, and no service of the notifications domain calls back into reservations.

Each run first takes the `notification-scan` lease (free, expired or already its own), so
one instance scans at a time; the holder keeps renewing it on each run, and another
instance takes over once a holder stops renewing (it stopped or died) and the lease expires.

The consistency check (its own `consistency-check` lease, every CONSISTENCY_INTERVAL_SECONDS)
repairs the counters a request cut off between its writes left wrong, as
`library-api check-consistency --repair` does: what it finds drifted it looks at again a
second later, and repairs what stayed drifted the same way (loans/consistency.py).
"""

import asyncio
import logging
import os
import socket
from collections.abc import Coroutine
from contextlib import suppress
from datetime import timedelta
from uuid import uuid4

from ..auth import service as auth
from ..config import Settings
from ..fines import service as fines
from ..idempotency import service as idempotency
from ..loans import consistency
from ..loans import history as loan_history
from ..privacy import service as privacy
from ..reservations import service as reservations
from . import archive, lease, outbox, scan

logger = logging.getLogger("library_api")

SCAN_LEASE = "notification-scan"
CONSISTENCY_LEASE = "consistency-check"
# Beyond the interval, so the holder's next run renews the lease before anyone else may
# take it, and long enough to cover a slow scan (SMTP timeouts included).
LEASE_MARGIN = timedelta(minutes=2)


async def run_scan(*, settings: Settings) -> int:
    """Expire lapsed holds, create every missing notification, mail what is pending,
    anonymise old history, move returned loans and spent notifications out of the collections
    every request uses, and delete expired sessions, login attempts and idempotency keys.

    Returns how many notifications this call created.
    """
    await reservations.expire_holds(settings=settings)
    created = await scan.create_missing()
    if settings.smtp_url:
        await outbox.send_pending_mail(settings=settings)
    await privacy.anonymise_history(settings=settings)
    # Returned loans leave the active collection (loans/history.py), and notifications past
    # their use theirs (archive.py).
    await loan_history.archive_returned()
    await archive.archive_spent()
    await auth.purge_expired()
    await idempotency.purge_expired()
    return created


async def run_consistency_check(
    *, watch: consistency.Watch, holder: str, settings: Settings
) -> list[str] | None:
    """One look of the consistency check, if `holder` has the lease: the repairs it made.

    None when another instance holds the lease (it runs the check; this watch forgets what it
    saw). Each repair, and each drift no repair can settle, is logged once, on one line.
    """
    ttl = timedelta(seconds=settings.consistency_interval_seconds) + LEASE_MARGIN
    if not await lease.take_lease(name=CONSISTENCY_LEASE, holder=holder, ttl=ttl):
        watch.forget()
        return None
    repaired, unrepairable = await watch.look(settings=settings)
    repaired += await fines.repair_missing(settings=settings)
    for line in repaired:
        logger.warning("consistency check repaired %s", line)
    for line in unrepairable:
        logger.error("consistency check cannot repair %s; a librarian must settle it", line)
    return repaired


def start_scanner(*, settings: Settings) -> "asyncio.Task[None] | None":
    """Start the periodic jobs: the notification scan every NOTIFY_INTERVAL_SECONDS, the
    consistency check every CONSISTENCY_INTERVAL_SECONDS (0: that one never; None when
    neither runs)."""
    jobs = []
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
    if settings.notify_interval_seconds > 0:
        jobs.append(_run(settings, holder))
    if settings.consistency_interval_seconds > 0:
        jobs.append(_check_consistency(settings, holder))
    if not jobs:
        return None
    return asyncio.create_task(_together(*jobs), name="periodic-jobs")


async def _together(*jobs: Coroutine[None, None, None]) -> None:
    await asyncio.gather(*jobs)


async def stop_scanner(task: "asyncio.Task[None] | None") -> None:
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _check_consistency(settings: Settings, holder: str) -> None:
    interval = settings.consistency_interval_seconds
    watch = consistency.Watch(settings)
    follow_ups = 0
    try:
        while True:
            delay: float = interval
            try:
                await run_consistency_check(watch=watch, holder=holder, settings=settings)
                if watch.pending and follow_ups < consistency.ROUNDS:
                    # New drift, or a request in flight: look again once it has had its second.
                    settle = watch.settle.total_seconds()
                    delay = min(interval, max(watch.settles_in(), settle))
                    follow_ups += 1
                else:
                    follow_ups = 0
            except Exception as exc:
                # One line (the database may be down for a while); the next run retries.
                logger.error("consistency check failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(delay)
    finally:
        with suppress(Exception):
            await asyncio.wait_for(lease.release_lease(name=CONSISTENCY_LEASE, holder=holder), 2)


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
