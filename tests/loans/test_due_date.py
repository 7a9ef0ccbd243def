"""PATCH /loans/{id}: a librarian corrects or extends a due date; everything follows it."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


def _patch(desk: Desk, account: Account, loan_id: str, due_at: Any) -> Any:
    return desk.client.patch(
        f"{API}/loans/{loan_id}", json={"due_at": due_at}, headers=desk.headers(account)
    )


def test_a_librarian_extends_a_loan_without_a_renewal(
    desk: Desk, member: Account, librarian: Account
) -> None:
    loan = desk.lend(member, desk.book())
    later = (datetime.fromisoformat(loan["due_at"]) + timedelta(days=7)).isoformat()
    changed = _patch(desk, librarian, loan["id"], later)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert datetime.fromisoformat(body["due_at"]) == datetime.fromisoformat(later)
    assert body["renewals"] == 0
    # Fifteen days on, the old date has passed but the new one has not.
    clock.advance(timedelta(days=15))
    assert not desk.client.get(f"{API}/loans/{loan['id']}", headers=desk.headers(member)).json()[
        "overdue"
    ]


def test_a_correction_into_the_past_makes_the_loan_overdue_at_once(
    desk: Desk, member: Account, librarian: Account
) -> None:
    loan = desk.lend(member, desk.book())
    clock.advance(timedelta(days=2))
    past = (clock.now() - timedelta(days=1)).isoformat()
    assert _patch(desk, librarian, loan["id"], past).json()["overdue"] is True
    # The reader's overdue state follows at once: no new borrow.
    refused = desk.borrow(member, desk.book())
    assert refused.json()["code"] == "has_overdue_loans"


def test_the_fine_follows_the_new_date(
    desk: Desk, member: Account, librarian: Account, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = client.app.state.runtime.settings
    monkeypatch.setattr(settings, "fine_per_day_cents", 25)
    book = desk.book()
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=3))
    due = clock.now() - timedelta(days=2) + timedelta(hours=1)  # 2 started days by the return
    _patch(desk, librarian, loan["id"], due.isoformat())
    assert desk.give_back(member, book).json()["fine_cents"] == 50


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1), timedelta(days=-30)])
def test_a_due_date_not_after_the_borrowing_is_a_422(
    desk: Desk, member: Account, librarian: Account, offset: timedelta
) -> None:
    loan = desk.lend(member, desk.book())
    borrowed = datetime.fromisoformat(loan["borrowed_at"])
    response = _patch(desk, librarian, loan["id"], (borrowed + offset).isoformat())
    assert response.status_code == 422


def test_a_due_date_without_an_offset_is_a_422(
    desk: Desk, member: Account, librarian: Account
) -> None:
    loan = desk.lend(member, desk.book())
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=20)
    assert _patch(desk, librarian, loan["id"], naive.isoformat()).status_code == 422


def test_returned_unknown_and_members(desk: Desk, member: Account, librarian: Account) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    later = (clock.now() + timedelta(days=30)).isoformat()
    assert _patch(desk, member, loan["id"], later).status_code == 403
    desk.give_back(member, book)
    returned = _patch(desk, librarian, loan["id"], later)
    assert returned.status_code == 409
    assert returned.json()["code"] == "already_returned"
    assert _patch(desk, librarian, "0" * 24, later).status_code == 404
