"""reservation_ready: at the hand-over, or at the latest at the next scan; exactly once."""

from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account
from tests.notifications.conftest import API, Desk, when


def _hand_over(desk: Desk, member: Account, other_member: Account) -> dict[str, Any]:
    """`other_member` waits for the only copy, which `member` brings back."""
    book = desk.book("The Left Hand of Darkness")
    desk.borrow(member, book)
    reservation = desk.reserve(other_member, book)
    desk.give_back(member, book)
    return reservation


def _my_reservation(client: TestClient, desk: Desk, account: Account) -> dict[str, Any]:
    response = client.get(f"{API}/reservations/me", headers=desk.headers(account))
    assert response.status_code == 200, response.text
    [reservation] = response.json()["items"]
    return reservation  # type: ignore[no-any-return]


def test_the_reader_is_told_once_when_the_hold_is_ready(
    desk: Desk, client: TestClient, member: Account, other_member: Account
) -> None:
    reservation = _hand_over(desk, member, other_member)
    [note] = desk.notifications(other_member)
    assert note["kind"] == "reservation_ready"
    assert note["reservation_id"] == reservation["id"]
    assert note["loan_id"] is None
    assert "The Left Hand of Darkness" in note["message"]
    ready = _my_reservation(client, desk, other_member)
    assert ready["status"] == "ready"
    assert when(ready["ready_until"]) in note["message"]

    assert desk.scan() == 0
    assert desk.scan() == 0
    assert len(desk.notifications(other_member)) == 1
    assert desk.notifications(member) == []


def test_the_scan_creates_a_missed_ready_notification_once(
    desk: Desk, raw_db: Any, member: Account, other_member: Account
) -> None:
    reservation = _hand_over(desk, member, other_member)
    # As if the hand-over's notification had not been stored (e.g. a crash right after).
    raw_db.notifications.delete_many({})
    assert desk.scan() == 1
    [note] = desk.notifications(other_member)
    assert (note["kind"], note["reservation_id"]) == ("reservation_ready", reservation["id"])
    assert desk.scan() == 0


def test_the_scan_expires_lapsed_holds(
    desk: Desk, raw_db: Any, member: Account, other_member: Account
) -> None:
    _hand_over(desk, member, other_member)
    clock.advance(timedelta(days=3, hours=1))  # past HOLD_PICKUP_DAYS
    # Read from the database directly: reading through the API may expire holds itself.
    assert raw_db.reservations.find_one()["status"] == "ready"
    desk.headers(desk.admin)
    assert desk.scan() == 0
    assert raw_db.reservations.find_one()["status"] == "expired"
