"""Returned loans move from `loans` to `loan_history` (at the scan, and at start-up for an
older database); every answer through the API stays the same."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


def _get(desk: Desk, account: Account, path: str, **params: Any) -> Any:
    response = desk.client.get(f"{API}{path}", params=params, headers=desk.headers(account))
    assert response.status_code == 200, response.text
    return response.json()


def _views(desk: Desk, member: Account, librarian: Account, ids: list[str]) -> dict[str, Any]:
    """Every reading of the member's loans the API offers."""
    views: dict[str, Any] = {}
    for status in (None, "active", "returned", "overdue"):
        params = {} if status is None else {"status": status}
        views[f"me {status}"] = _get(desk, member, "/loans/me", **params)
        views[f"all {status}"] = _get(desk, librarian, "/loans", user_id=member.id, **params)
        for page in (1, 2, 3):
            views[f"me {status} {page}"] = _get(
                desk, member, "/loans/me", page=page, page_size=2, **params
            )
    for loan_id in ids:
        views[loan_id] = _get(desk, member, f"/loans/{loan_id}")
    views["export loans"] = sorted(
        _get(desk, member, "/users/me/export")["loans"], key=lambda loan: str(loan["_id"])
    )
    views["me"] = _get(desk, member, "/users/me")
    return views


def _scan(desk: Desk, admin: Account) -> None:
    run = desk.client.post(f"{API}/admin/notifications/run", headers=desk.headers(admin))
    assert run.status_code == 200, run.text


def test_the_scan_moves_returned_loans_and_nothing_changes_through_the_api(
    desk: Desk,
    member: Account,
    librarian: Account,
    admin: Account,
    raw_db: Any,
    assert_consistent: Callable[[], None],
) -> None:
    books = [desk.book(title=f"Book {n}") for n in range(5)]
    lent = []
    for book in books:
        lent.append(desk.lend(member, book)["id"])
        clock.advance(timedelta(hours=1))
    for book in books[:3]:
        assert desk.give_back(member, book).status_code == 200
    before = _views(desk, member, librarian, lent)

    _scan(desk, admin)

    assert sorted(str(d["_id"]) for d in raw_db.loans.find()) == sorted(lent[3:])
    assert {d["status"] for d in raw_db.loans.find()} == {"active"}
    assert sorted(str(d["_id"]) for d in raw_db.loan_history.find()) == sorted(lent[:3])
    assert _views(desk, member, librarian, lent) == before
    # A moved loan is still the returned loan it was.
    moved = lent[0]
    headers = desk.headers(member)
    for path in (f"/loans/{moved}/return", f"/loans/{moved}/renew"):
        refused = desk.client.post(f"{API}{path}", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (409, "already_returned")
    patched = desk.client.patch(
        f"{API}/loans/{moved}",
        json={"due_at": (clock.now() + timedelta(days=3)).isoformat()},
        headers=desk.headers(librarian),
    )
    assert (patched.status_code, patched.json()["code"]) == (409, "already_returned")
    # The same book borrowed again, and returned again: two loans, one in each place.
    again = desk.lend(member, books[0])["id"]
    assert desk.give_back(member, books[0]).status_code == 200
    assert _get(desk, member, "/loans/me", status="returned")["total"] == 4
    _scan(desk, admin)
    assert raw_db.loan_history.count_documents({}) == 4
    assert raw_db.loans.count_documents({"_id": ObjectId(again)}) == 0
    assert_consistent()


def test_a_late_return_keeps_its_fine_after_the_move(
    desk: Desk,
    member: Account,
    admin: Account,
    client: TestClient,
    raw_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    assert_consistent: Callable[[], None],
) -> None:
    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "fine_per_day_cents", 25)
    book = desk.book()
    loan = desk.lend(member, book)["id"]
    clock.advance(timedelta(days=15, hours=12))  # two started days late
    returned = desk.give_back(member, book).json()
    assert returned["fine_cents"] == 50
    _scan(desk, admin)
    assert raw_db.loans.count_documents({}) == 0
    assert raw_db.loan_history.find_one({"_id": ObjectId(loan)})["fine_cents"] == 50
    assert _get(desk, member, f"/loans/{loan}")["fine_cents"] == 50
    fines = _get(desk, member, "/fines/me")["items"]
    assert [(f["loan_id"], f["amount_cents"]) for f in fines] == [(loan, 50)]
    assert_consistent()


def _old_loan(member: Account, book: str, days_ago: int, **extra: Any) -> dict[str, Any]:
    borrowed = clock.now() - timedelta(days=days_ago)
    return {
        "_id": ObjectId(),
        "book_id": ObjectId(book),
        "user_id": ObjectId(member.id),
        "book_title": "Dune",
        "borrowed_at": borrowed,
        "due_at": borrowed + timedelta(days=14),
        "returned_at": borrowed + timedelta(days=2),
        "renewals": 0,
        "status": "returned",
        "fine_cents": 0,
        **extra,
    }


def _until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the migration did not finish in time"
        time.sleep(0.05)


def test_the_start_up_migration_moves_old_returned_loans_once(
    desk: Desk, member: Account, raw_db: Any, app_with: Callable[..., Any]
) -> None:
    book = desk.book()
    active = desk.lend(member, book)["id"]
    old = [_old_loan(member, book, days_ago=30 + n) for n in range(5)]
    raw_db.loans.insert_many(old)
    # A move cut off between its copy and its delete: the loan is in both places.
    raw_db.loan_history.insert_one(old[0])
    ids = [active] + [str(loan["_id"]) for loan in old]

    def returned_left() -> int:
        return int(raw_db.loans.count_documents({"status": "returned"}))

    for _ in range(2):  # a second start finds nothing left to move
        with app_with() as other:
            _until(lambda: returned_left() == 0)
            page = other.get(f"{API}/loans/me", headers=desk.headers(member)).json()
        assert [item["id"] for item in page["items"]] == ids
        assert page["total"] == 6
        assert raw_db.loan_history.count_documents({}) == 5
        assert [str(d["_id"]) for d in raw_db.loans.find()] == [active]
    returned = _get(desk, member, "/loans/me", status="returned", page=2, page_size=2)
    assert ([item["id"] for item in returned["items"]], returned["total"]) == (ids[3:5], 5)


def test_a_page_far_past_the_end_is_empty(desk: Desk, member: Account, librarian: Account) -> None:
    """Found by the schema fuzzer: skip + page_size past 2**31 was sent as the find's limit."""
    book = desk.book()
    desk.lend(member, book)
    assert desk.give_back(member, book).status_code == 200
    for status in ({}, {"status": "returned"}):
        far = _get(desk, librarian, "/loans", page=10_881_617_288, page_size=100, **status)
        assert far["items"] == [] and far["total"] >= 1
