"""The lease that lets one API instance at a time run the background scan."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

from starlette.testclient import TestClient

from library_api import clock
from library_api.notifications import lease
from library_api.notifications.scheduler import SCAN_LEASE
from tests.conftest import Account
from tests.notifications.conftest import Desk

TTL = timedelta(minutes=5)


def _lease_ops(client: TestClient) -> tuple[Callable[[str], bool], Callable[[str], None]]:
    def take(holder: str) -> bool:
        taken: bool = client.portal.call(  # type: ignore[union-attr]
            partial(lease.take_lease, name="job", holder=holder, ttl=TTL)
        )
        return taken

    def release(holder: str) -> None:
        client.portal.call(partial(lease.release_lease, name="job", holder=holder))  # type: ignore[union-attr]

    return take, release


def test_one_holder_at_a_time_until_it_expires_or_is_released(client: TestClient) -> None:
    take, release = _lease_ops(client)
    assert take("a")
    assert not take("b")
    assert take("a")  # renewal by its holder
    clock.advance(TTL + timedelta(seconds=1))
    assert take("b")
    assert not take("a")
    release("a")  # not the holder: nothing happens
    assert not take("a")
    release("b")
    assert take("a")


def test_concurrent_takers_get_it_once(client: TestClient) -> None:
    take, _ = _lease_ops(client)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(take, [f"holder-{i}" for i in range(8)]))
    assert results.count(True) == 1


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_held_lease_blocks_the_background_scan_of_another_instance(
    desk: Desk, raw_db: Any, app_with: Any, member: Account
) -> None:
    desk.borrow(member, desk.book())
    clock.advance(timedelta(days=15))
    raw_db.leases.insert_one(
        {"_id": SCAN_LEASE, "holder": "another-instance", "expires_at": clock.now() + TTL}
    )
    with app_with(notify_interval_seconds=1):
        time.sleep(2.5)  # the scanner runs at start-up, then every second
        assert raw_db.notifications.count_documents({}) == 0
        assert raw_db.leases.find_one({"_id": SCAN_LEASE})["holder"] == "another-instance"

        # The other holder stopped renewing: once its lease expires, this instance scans.
        raw_db.leases.update_one(
            {"_id": SCAN_LEASE}, {"$set": {"expires_at": clock.now() - timedelta(seconds=1)}}
        )
        assert _wait_for(lambda: raw_db.notifications.count_documents({}) == 1)
        assert raw_db.notifications.find_one()["kind"] == "overdue"
        assert raw_db.leases.find_one({"_id": SCAN_LEASE})["holder"] != "another-instance"
    # Stopping hands the lease over at once.
    assert raw_db.leases.count_documents({"_id": SCAN_LEASE}) == 0


def test_no_background_scan_when_the_interval_is_zero(
    desk: Desk, raw_db: Any, app_with: Any, member: Account
) -> None:
    desk.borrow(member, desk.book())
    clock.advance(timedelta(days=15))
    with app_with(notify_interval_seconds=0):
        time.sleep(1)
    assert raw_db.notifications.count_documents({}) == 0
    assert raw_db.leases.count_documents({}) == 0
