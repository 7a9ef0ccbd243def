"""Patron privacy: retention anonymisation, keep_history, export and erasure, through HTTP."""

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import PASSWORD, Account
from tests.loans.support import API, Desk

ANONYMOUS = "000000000000000000000000"


def _scan(desk: Desk, admin: Account) -> None:
    response = desk.client.post(f"{API}/admin/notifications/run", headers=desk.headers(admin))
    assert response.status_code == 200, response.text


def _my_loans(desk: Desk, member: Account) -> list[dict[str, Any]]:
    response = desk.client.get(f"{API}/loans/me", headers=desk.headers(member))
    return response.json()["items"]  # type: ignore[no-any-return]


def _history(desk: Desk, member: Account) -> str:
    book = desk.book()
    loan = desk.lend(member, book)
    desk.give_back(member, book)
    return str(loan["id"])


def test_old_history_stops_naming_its_reader_but_still_counts(
    desk: Desk, member: Account, librarian: Account, admin: Account, raw_db: Any
) -> None:
    loan_id = _history(desk, member)
    clock.advance(timedelta(days=364))
    _scan(desk, admin)
    assert [loan["id"] for loan in _my_loans(desk, member)] == [loan_id]
    clock.advance(timedelta(days=2))
    _scan(desk, admin)
    assert _my_loans(desk, member) == []
    listed = desk.client.get(f"{API}/loans/{loan_id}", headers=desk.headers(librarian)).json()
    assert listed["user_id"] == ANONYMOUS
    stats = desk.client.get(f"{API}/stats", headers=desk.headers(librarian)).json()
    assert stats["top_borrowed"][0]["loans"] == 1
    # The scan moved the returned loan to the history (loans/history.py).
    assert raw_db.loans.find_one({}) is None
    assert str(raw_db.loan_history.find_one({})["user_id"]) == ANONYMOUS


def test_keep_history_keeps_it(desk: Desk, member: Account, admin: Account) -> None:
    changed = desk.client.patch(
        f"{API}/users/me", json={"keep_history": True}, headers=desk.headers(member)
    )
    assert changed.status_code == 200
    assert changed.json()["keep_history"] is True
    assert changed.json()["name"] == "Member"
    loan_id = _history(desk, member)
    clock.advance(timedelta(days=400))
    _scan(desk, admin)
    assert [loan["id"] for loan in _my_loans(desk, member)] == [loan_id]


def test_a_loan_with_an_open_fine_is_kept_until_the_fine_closes(
    desk: Desk,
    member: Account,
    librarian: Account,
    admin: Account,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client.app.state.runtime.settings, "fine_per_day_cents", 10)  # type: ignore[attr-defined]
    book = desk.book()
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=20))
    desk.give_back(member, book)
    clock.advance(timedelta(days=400))
    _scan(desk, admin)
    assert [x["id"] for x in _my_loans(desk, member)] == [loan["id"]]
    fine = desk.client.get(f"{API}/fines/me", headers=desk.headers(member)).json()["items"][0]
    desk.client.post(
        f"{API}/fines/{fine['id']}/waive", json={"reason": "x"}, headers=desk.headers(librarian)
    )
    _scan(desk, admin)
    assert _my_loans(desk, member) == []


def test_the_export_holds_everything_and_no_secret(desk: Desk, member: Account) -> None:
    _history(desk, member)
    desk.hold(member, _lent_out(desk))
    response = desk.client.get(f"{API}/users/me/export", headers=desk.headers(member))
    assert response.status_code == 200
    day = clock.now().date().isoformat()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="library-export-{day}.json"'
    )
    data = json.loads(response.content)
    assert set(data) == {"user", "sessions", "loans", "reservations", "notifications", "fines"}
    assert data["user"]["email"] == member.email
    assert len(data["loans"]) == 1 and len(data["reservations"]) == 1
    assert data["sessions"]
    text = response.text
    for secret in ("password_hash", "refresh_hash", "previous_hashes", "argon2"):
        assert secret not in text


def _lent_out(desk: Desk) -> str:
    """A book whose only copy is out to a throw-away reader, so others can reserve it."""
    book = desk.book()
    desk.client.post(f"{API}/books/{book}/borrow", json={}, headers=desk.headers(desk.librarian))
    return book


def test_erasing_yourself(
    desk: Desk, member: Account, other_member: Account, admin: Account, raw_db: Any
) -> None:
    _history(desk, member)
    book = _lent_out(desk)
    desk.hold(member, book)
    desk.hold(other_member, book)
    desk.client.post(f"{API}/books/{book}/return", headers=desk.headers(desk.librarian))
    assert desk.reservation(member, book)["status"] == "ready"
    wrong = desk.client.request(
        "DELETE", f"{API}/users/me", json={"password": "not it"}, headers=desk.headers(member)
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_password"
    erased = desk.client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=desk.headers(member)
    )
    assert erased.status_code == 204, erased.text
    # Tokens die, the refresh token too; the held copy passed on; the email is free again.
    assert desk.client.get(f"{API}/users/me", headers=member.headers).status_code == 401
    refreshed = desk.client.post(
        f"{API}/auth/refresh", json={"refresh_token": member.refresh_token}
    )
    assert refreshed.status_code == 401
    assert desk.reservation(other_member, book)["status"] == "ready"
    assert raw_db.loans.count_documents({"user_id": {"$in": [member.id]}}) == 0
    assert raw_db.users.find_one({"email": member.email}) is None
    again = desk.client.post(
        f"{API}/auth/register",
        json={"name": "Back", "email": member.email, "password": "a new long passphrase"},
    )
    assert again.status_code == 201


def test_erasure_is_refused_while_books_are_out_or_fines_open(
    desk: Desk,
    member: Account,
    librarian: Account,
    admin: Account,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = desk.book()
    desk.lend(member, book)
    out = desk.client.request("DELETE", f"{API}/users/{member.id}", headers=desk.headers(admin))
    assert out.status_code == 409
    assert out.json()["code"] == "has_active_loans"
    monkeypatch.setattr(client.app.state.runtime.settings, "fine_per_day_cents", 10)  # type: ignore[attr-defined]
    clock.advance(timedelta(days=20))
    desk.give_back(member, book)
    owed = desk.client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=desk.headers(member)
    )
    assert owed.status_code == 409
    assert owed.json()["code"] == "fines_outstanding"
    # Refused: the account works as before.
    assert desk.client.get(f"{API}/users/me", headers=desk.headers(member)).status_code == 200


def test_an_admin_erases_an_account_but_not_the_last_admin(
    desk: Desk, member: Account, admin: Account, client: TestClient
) -> None:
    assert (
        desk.client.request("DELETE", f"{API}/users/{member.id}", headers=desk.headers(admin))
    ).status_code == 204
    assert login_fails(client, member)
    last = desk.client.request("DELETE", f"{API}/users/{admin.id}", headers=desk.headers(admin))
    assert last.status_code == 409
    assert last.json()["code"] == "last_admin"


def login_fails(client: TestClient, account: Account) -> bool:
    response = client.post(
        f"{API}/auth/login", data={"username": account.email, "password": account.password}
    )
    return response.status_code == 401


def test_logs_never_say_what_someone_borrowed_beyond_ids(
    desk: Desk, member: Account, admin: Account
) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("library_api")
    level, handler = logger.level, Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the tests log warnings only; every line is wanted here
    try:
        book = desk.book(title="A Very Private Diary")
        desk.lend(member, book)
        desk.give_back(member, book)
        clock.advance(timedelta(days=400))
        _scan(desk, admin)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    logged = "\n".join(lines)
    assert book in logged  # the ids are there: the lines were captured
    assert "A Very Private Diary" not in logged
    assert member.email not in logged
