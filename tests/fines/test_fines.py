"""Fines: off by default; one per late return whatever the races; payments and waivers."""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from httpx2 import Response
from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk, run_cli

PER_DAY = 50
MAX = 400
BLOCK = 100


@pytest.fixture
def fines_on(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The running app's settings with fines switched on (settings are read per request)."""
    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "fine_per_day_cents", PER_DAY)
    monkeypatch.setattr(settings, "fine_max_cents", MAX)
    monkeypatch.setattr(settings, "fine_block_cents", BLOCK)
    yield


def _at_once(calls: list[Callable[[], Response]]) -> list[Response]:
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Response]) -> Response:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _late_loan(desk: Desk, member: Account, late: timedelta) -> tuple[str, dict[str, Any]]:
    book = desk.book()
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=14) + late)
    return book, loan


def _my_fines(desk: Desk, member: Account) -> list[dict[str, Any]]:
    response = desk.client.get(f"{API}/fines/me", headers=desk.headers(member))
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def test_fines_are_off_by_default(desk: Desk, member: Account) -> None:
    book, _ = _late_loan(desk, member, timedelta(days=3))
    returned = desk.give_back(member, book)
    assert returned.status_code == 200
    assert returned.json()["fine_cents"] == 0
    assert _my_fines(desk, member) == []


def test_a_late_return_is_fined_once_per_started_day(
    desk: Desk, member: Account, fines_on: None
) -> None:
    book, loan = _late_loan(desk, member, timedelta(days=2, hours=1))
    overdue = desk.client.get(f"{API}/loans/{loan['id']}", headers=desk.headers(member)).json()
    assert overdue["fine_cents"] == 3 * PER_DAY  # what it would carry if returned now
    returned = desk.give_back(member, book).json()
    assert returned["fine_cents"] == 3 * PER_DAY
    (fine,) = _my_fines(desk, member)
    assert fine["loan_id"] == loan["id"]
    assert fine["amount_cents"] == fine["balance_cents"] == 3 * PER_DAY
    assert (fine["status"], fine["currency"], fine["book_title"]) == ("open", "EUR", "Dune")
    me = desk.client.get(f"{API}/users/me", headers=desk.headers(member)).json()
    assert me["fines_due_cents"] == 3 * PER_DAY


def test_a_fine_is_capped_per_loan(desk: Desk, member: Account, fines_on: None) -> None:
    book, _ = _late_loan(desk, member, timedelta(days=30))
    assert desk.give_back(member, book).json()["fine_cents"] == MAX


def test_an_on_time_return_is_not_fined(desk: Desk, member: Account, fines_on: None) -> None:
    book = desk.book()
    desk.lend(member, book)
    clock.advance(timedelta(days=13))
    assert desk.give_back(member, book).json()["fine_cents"] == 0
    assert _my_fines(desk, member) == []


def test_parallel_returns_of_one_loan_make_one_return_and_one_fine(
    desk: Desk, member: Account, librarian: Account, fines_on: None, raw_db: Any
) -> None:
    book, loan = _late_loan(desk, member, timedelta(days=1))
    desk.headers(librarian)
    desk.headers(member)
    calls: list[Callable[[], Response]] = []
    for i in range(8):
        if i % 2:
            calls.append(lambda: desk.give_back(member, book))
        else:
            calls.append(
                lambda: desk.client.post(
                    f"{API}/loans/{loan['id']}/return", headers=desk.headers(librarian)
                )
            )
    statuses = Counter(r.status_code for r in _at_once(calls))
    assert statuses[200] == 1, statuses
    assert set(statuses) == {200, 409}
    assert raw_db.fines.count_documents({}) == 1


def _fine(
    desk: Desk, member: Account, late: timedelta = timedelta(days=1, hours=12)
) -> dict[str, Any]:
    """A returned late loan's fine (by default 2 started days: 100)."""
    book, _ = _late_loan(desk, member, late)
    desk.give_back(member, book)
    (fine,) = _my_fines(desk, member)
    return fine


def _pay(desk: Desk, librarian: Account, fine_id: str, amount: int) -> Response:
    return desk.client.post(
        f"{API}/fines/{fine_id}/payments",
        json={"amount_cents": amount},
        headers=desk.headers(librarian),
    )


def test_payments_bring_the_balance_down_and_close_the_fine_at_zero(
    desk: Desk, member: Account, librarian: Account, fines_on: None
) -> None:
    fine = _fine(desk, member)
    assert _pay(desk, librarian, fine["id"], 101).status_code == 422
    assert _pay(desk, librarian, fine["id"], 0).status_code == 422
    part = _pay(desk, librarian, fine["id"], 40).json()
    assert (part["paid_cents"], part["balance_cents"], part["status"]) == (40, 60, "open")
    rest = _pay(desk, librarian, fine["id"], 60).json()
    assert (rest["paid_cents"], rest["balance_cents"], rest["status"]) == (100, 0, "paid")
    closed = _pay(desk, librarian, fine["id"], 1)
    assert closed.status_code == 409
    assert closed.json()["code"] == "fine_closed"


def test_parallel_payments_never_take_more_than_the_balance(
    desk: Desk, member: Account, librarian: Account, fines_on: None, raw_db: Any
) -> None:
    fine = _fine(desk, member)
    desk.headers(librarian)  # a fresh token first, not eight parallel logins
    answers = _at_once([lambda: _pay(desk, librarian, fine["id"], 30) for _ in range(8)])
    assert Counter(a.status_code for a in answers)[200] == 3
    stored = raw_db.fines.find_one({})
    assert (stored["paid_cents"], stored["balance_cents"]) == (90, 10)
    assert stored["amount_cents"] == stored["paid_cents"] + stored["balance_cents"]


def test_a_waiver_keeps_who_when_and_why(
    desk: Desk, member: Account, librarian: Account, fines_on: None, raw_db: Any
) -> None:
    fine = _fine(desk, member)
    _pay(desk, librarian, fine["id"], 30)
    waived = desk.client.post(
        f"{API}/fines/{fine['id']}/waive",
        json={"reason": "Book returned through the night slot"},
        headers=desk.headers(librarian),
    )
    assert waived.status_code == 200
    body = waived.json()
    assert (body["status"], body["balance_cents"], body["waived_cents"]) == ("waived", 0, 70)
    waiver = raw_db.fines.find_one({})["waiver"]
    assert waiver["reason"] == "Book returned through the night slot"
    assert str(waiver["by"]) == librarian.id
    assert waiver["at"] is not None
    again = desk.client.post(
        f"{API}/fines/{fine['id']}/waive", json={"reason": "x"}, headers=desk.headers(librarian)
    )
    assert again.json()["code"] == "fine_closed"


def test_members_see_their_own_fines_and_cannot_settle_them(
    desk: Desk, member: Account, other_member: Account, librarian: Account, fines_on: None
) -> None:
    fine = _fine(desk, member)
    assert _my_fines(desk, other_member) == []
    assert _pay(desk, member, fine["id"], 10).status_code == 403
    listed = desk.client.get(
        f"{API}/fines",
        params={"user_id": member.id, "status": "open"},
        headers=desk.headers(librarian),
    ).json()
    assert [f["id"] for f in listed["items"]] == [fine["id"]]
    assert (
        desk.client.get(
            f"{API}/fines", params={"user_id": "nonsense"}, headers=desk.headers(librarian)
        ).json()["items"]
        == []
    )


def test_an_open_balance_over_the_block_stops_borrowing_and_renewing(
    desk: Desk,
    member: Account,
    librarian: Account,
    client: TestClient,
    fines_on: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fine = _fine(desk, member, timedelta(hours=1))  # 50, under the block of 100
    kept = desk.book()
    loan = desk.lend(member, kept)
    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "fine_block_cents", 50)
    other = desk.book()
    refused = desk.borrow(member, other)
    assert refused.status_code == 409
    assert refused.json()["code"] == "fines_outstanding"
    renew = desk.client.post(f"{API}/loans/{loan['id']}/renew", headers=desk.headers(member))
    assert renew.status_code == 409
    assert renew.json()["code"] == "fines_outstanding"
    # Paid, borrowing works again.
    assert _pay(desk, librarian, fine["id"], 50).json()["status"] == "paid"
    assert desk.borrow(member, other).status_code == 201


def test_check_consistency_covers_fines_and_repairs_a_missing_one(
    desk: Desk,
    member: Account,
    librarian: Account,
    fines_on: None,
    raw_db: Any,
    client: TestClient,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fine = _fine(desk, member)
    _pay(desk, librarian, fine["id"], 30)
    for name, value in (("FINE_PER_DAY_CENTS", PER_DAY), ("FINE_MAX_CENTS", MAX)):
        monkeypatch.setenv(name, str(value))
    assert run_cli(client, settings, monkeypatch, "check-consistency")[0] == 0
    # A balance that does not add up, and a late return whose fine was never recorded.
    raw_db.fines.update_one({}, {"$set": {"balance_cents": 5}})
    book, loan = _late_loan(desk, member, timedelta(days=1))
    charged = desk.give_back(member, book).json()["fine_cents"]
    raw_db.fines.delete_one({"_id": ObjectId(loan["id"])})
    raw_db.loans.update_one({"_id": ObjectId(loan["id"])}, {"$set": {"fine_cents": 0}})
    status, output = run_cli(client, settings, monkeypatch, "check-consistency")
    assert status == 1
    assert f"fine {fine['id']}: balance 5" in output
    # The reader's record follows the fines' own writes, not the edits above.
    assert f"user {member.id}: fines_due_cents {70 + charged}, open balances sum to 5" in output
    assert f"loan {loan['id']}: returned late with no fine" in output
    status, output = run_cli(client, settings, monkeypatch, "check-consistency", "--repair")
    assert f"loan {loan['id']}: fine of {charged} recorded" in output
    assert f"user {member.id}: fines_due_cents" in output
    assert raw_db.fines.count_documents({}) == 2
