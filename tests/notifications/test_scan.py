"""The scan: which notifications it creates, when, and never twice."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account
from tests.notifications.conftest import API, Desk, SecondInstance, when

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _until_due(loan: dict[str, Any]) -> timedelta:
    return datetime.fromisoformat(loan["due_at"]) - clock.now()


def test_due_soon_within_24_hours_of_the_due_time_not_earlier(desk: Desk, member: Account) -> None:
    book = desk.book("Dune")
    loan = desk.borrow(member, book)
    clock.advance(_until_due(loan) - 25 * HOUR)
    assert desk.scan() == 0
    assert desk.notifications(member) == []

    clock.advance(2 * HOUR)  # due in 23 hours
    assert desk.scan() == 1
    [note] = desk.notifications(member)
    assert note["kind"] == "due_soon"
    assert note["loan_id"] == loan["id"]
    assert note["reservation_id"] is None
    assert note["read_at"] is None
    assert "Dune" in note["message"]
    assert when(loan["due_at"]) in note["message"]

    assert desk.scan() == 0
    assert len(desk.notifications(member)) == 1


def test_overdue_after_the_due_time_once(desk: Desk, member: Account) -> None:
    book = desk.book("Solaris")
    loan = desk.borrow(member, book)
    clock.advance(_until_due(loan) - HOUR)
    assert desk.scan() == 1  # due_soon

    clock.advance(2 * HOUR)
    assert desk.scan() == 1
    newest, oldest = desk.notifications(member)
    assert (newest["kind"], oldest["kind"]) == ("overdue", "due_soon")
    assert newest["loan_id"] == loan["id"]
    assert "Solaris" in newest["message"]
    assert when(loan["due_at"]) in newest["message"]
    assert "overdue" in newest["message"]

    clock.advance(3 * DAY)
    assert desk.scan() == 0
    assert len(desk.notifications(member)) == 2


def test_a_loan_first_seen_overdue_gets_only_overdue(desk: Desk, member: Account) -> None:
    # Decision: a reminder that a loan is "due soon" after its due time would tell nothing.
    loan = desk.borrow(member, desk.book())
    clock.advance(_until_due(loan) + HOUR)
    assert desk.scan() == 1
    assert [n["kind"] for n in desk.notifications(member)] == ["overdue"]


def test_a_returned_loan_gets_nothing(desk: Desk, member: Account) -> None:
    book = desk.book()
    loan = desk.borrow(member, book)
    desk.give_back(member, book)
    clock.advance(_until_due(loan) - HOUR)
    assert desk.scan() == 0
    clock.advance(3 * DAY)
    assert desk.scan() == 0
    assert desk.notifications(member) == []


def test_a_renewed_loan_is_not_due_soon_at_its_old_due_time(
    desk: Desk, client: TestClient, member: Account
) -> None:
    loan = desk.borrow(member, desk.book())
    response = client.post(f"{API}/loans/{loan['id']}/renew", headers=desk.headers(member))
    assert response.status_code == 200, response.text
    clock.advance(_until_due(loan) - HOUR)
    assert desk.scan() == 0


def test_notifications_go_to_the_borrower_only(
    desk: Desk, member: Account, other_member: Account
) -> None:
    desk.borrow(member, desk.book())
    clock.advance(15 * DAY)
    assert desk.scan() == 1
    assert len(desk.notifications(member)) == 1
    assert desk.notifications(other_member) == []


def _overdue_loans(desk: Desk, member: Account, other_member: Account) -> int:
    for title in ("One", "Two", "Three"):
        desk.borrow(member, desk.book(title))
    desk.borrow(other_member, desk.book("Four"))
    clock.advance(15 * DAY)
    return 4


def _keys(raw_db: Any) -> list[str]:
    return sorted(n["key"] for n in raw_db.notifications.find())


def test_concurrent_scans_create_each_notification_once(
    desk: Desk, raw_db: Any, member: Account, other_member: Account
) -> None:
    expected = _overdue_loans(desk, member, other_member)
    desk.headers(desk.admin)
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(lambda _: desk.scan(), range(8)))
    assert sum(created) == expected
    keys = _keys(raw_db)
    assert len(keys) == expected == len(set(keys))
    assert desk.scan() == 0


def test_two_instances_scanning_at_once_create_each_notification_once(
    desk: Desk,
    raw_db: Any,
    member: Account,
    other_member: Account,
    second_instance: SecondInstance,
) -> None:
    expected = _overdue_loans(desk, member, other_member)
    # The other process runs on real time, so the loans must be overdue in real time.
    clock.reset()
    raw_db.loans.update_many({}, {"$set": {"due_at": clock.now() - DAY}})
    admin = desk.headers(desk.admin)
    other = second_instance.http()

    def run(i: int) -> int:
        if i % 2:
            response = other.post(f"{API}/admin/notifications/run", headers=admin)
            assert response.status_code == 200, response.text
            created: int = response.json()["created"]
            return created
        return desk.scan()

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(run, range(8)))
    assert sum(created) == expected
    assert all(c >= 0 for c in created)
    keys = _keys(raw_db)
    assert len(keys) == expected == len(set(keys))
