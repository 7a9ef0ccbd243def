"""Database commands per request, counted on the wire (PyMongo command monitoring).

Authentication is one command (the session with its user); a borrow three more, whether or
not the reader holds or has returned other loans (a fourth, beside them, only when one of the
reader's loans may be overdue); a return three more when no one waits for the book; a
book's availability three more, whatever the reader's
loans (a fourth for the open fines, only when fines can block); a login four.
"""

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api import clock
from tests.commands import recorded
from tests.conftest import PASSWORD, Account, login
from tests.loans.support import isbn13

API = "/api/v1"
_QUIET = frozenset(
    {
        "hello",
        "isMaster",
        "ismaster",
        "ping",
        "endSessions",
        "killCursors",
        "saslStart",
        "saslContinue",
    }
)


AUTH = [("aggregate", "sessions")]


@pytest.fixture
def watched(app_with: Callable[..., Any], librarian: Account, member: Account) -> Iterator[Any]:
    """An app whose database client was made after the recorder (tests/commands.py)."""
    with app_with() as other:
        yield other


def _commands(call: Callable[[], Any], status: int) -> list[tuple[str, str]]:
    """(command, collection) of each command the request sent, the driver's own aside."""
    response, sent = recorded(call)
    assert response.status_code == status, response.text
    return [(s.name, s.collection) for s in sent if s.name not in _QUIET]


def _book(client: TestClient, librarian: Account, copies: int = 2) -> str:
    payload = {"title": "Counted", "authors": ["A"], "isbn": isbn13(), "total_copies": copies}
    response = client.post(f"{API}/books", json=payload, headers=librarian.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_authentication_is_one_command(watched: TestClient, member: Account) -> None:
    me = _commands(lambda: watched.get(f"{API}/users/me", headers=member.headers), 200)
    assert me[: len(AUTH)] == AUTH
    assert ("find", "sessions") not in me and ("find", "users") not in me


def test_borrow_is_three_commands_beyond_authentication(
    watched: TestClient, librarian: Account, member: Account
) -> None:
    first, second = _book(watched, librarian), _book(watched, librarian)

    def borrow(book: str) -> Callable[[], Any]:
        return lambda: watched.post(f"{API}/books/{book}/borrow", headers=member.headers)

    assert _commands(borrow(first), 201) == [
        *AUTH,
        ("update", "users"),
        ("findAndModify", "books"),
        ("insert", "loans"),
    ]
    # Holding another loan, not due yet: the reader's record rules out an overdue one.
    assert _commands(borrow(second), 201) == [
        *AUTH,
        ("update", "users"),
        ("findAndModify", "books"),
        ("insert", "loans"),
    ]


def test_borrow_with_a_loan_that_may_be_overdue_checks(
    watched: TestClient, librarian: Account, member: Account
) -> None:
    first, second = _book(watched, librarian), _book(watched, librarian)
    assert watched.post(f"{API}/books/{first}/borrow", headers=member.headers).status_code == 201
    clock.advance(timedelta(days=15))
    headers = {"Authorization": f"Bearer {login(watched, member.email, PASSWORD)['access_token']}"}
    refused = _commands(lambda: watched.post(f"{API}/books/{second}/borrow", headers=headers), 409)
    assert ("find", "loans") in refused


def test_a_returned_loan_past_its_due_date_leaves_no_doubt(
    watched: TestClient, librarian: Account, member: Account
) -> None:
    first, second, third = (_book(watched, librarian) for _ in range(3))
    assert watched.post(f"{API}/books/{first}/borrow", headers=member.headers).status_code == 201
    clock.advance(timedelta(days=1))
    headers = {"Authorization": f"Bearer {login(watched, member.email, PASSWORD)['access_token']}"}
    assert watched.post(f"{API}/books/{second}/borrow", headers=headers).status_code == 201
    assert watched.post(f"{API}/books/{first}/return", headers=headers).status_code == 200
    # Past the returned loan's due date, before the other's: the record knows which is out.
    clock.advance(timedelta(days=13, hours=12))
    headers = {"Authorization": f"Bearer {login(watched, member.email, PASSWORD)['access_token']}"}
    assert _commands(lambda: watched.post(f"{API}/books/{third}/borrow", headers=headers), 201) == [
        *AUTH,
        ("update", "users"),
        ("findAndModify", "books"),
        ("insert", "loans"),
    ]


def test_a_renewed_loan_past_its_first_due_date_leaves_no_doubt(
    watched: TestClient, librarian: Account, member: Account
) -> None:
    first, second = _book(watched, librarian), _book(watched, librarian)
    loan = watched.post(f"{API}/books/{first}/borrow", headers=member.headers).json()
    assert (
        watched.post(f"{API}/loans/{loan['id']}/renew", headers=member.headers).status_code == 200
    )
    clock.advance(timedelta(days=20))
    headers = {"Authorization": f"Bearer {login(watched, member.email, PASSWORD)['access_token']}"}
    borrowed = _commands(lambda: watched.post(f"{API}/books/{second}/borrow", headers=headers), 201)
    assert ("find", "loans") not in borrowed and len(borrowed) == len(AUTH) + 3


def test_login_is_four_commands(watched: TestClient, member: Account) -> None:
    form = {"username": member.email, "password": PASSWORD}
    assert _commands(lambda: watched.post(f"{API}/auth/login", data=form), 200) == [
        ("insert", "login_attempts"),
        ("aggregate", "login_attempts"),
        ("delete", "login_attempts"),
        ("insert", "sessions"),
    ]


def test_return_is_three_commands_beyond_authentication(
    watched: TestClient, librarian: Account, member: Account
) -> None:
    book = _book(watched, librarian)
    assert watched.post(f"{API}/books/{book}/borrow", headers=member.headers).status_code == 201
    returned = _commands(
        lambda: watched.post(f"{API}/books/{book}/return", headers=member.headers), 200
    )
    # The loan closes first; the slot and the copy move together (their order varies).
    assert returned[: len(AUTH) + 1] == [*AUTH, ("findAndModify", "loans")]
    assert sorted(returned[len(AUTH) + 1 :]) == [("findAndModify", "books"), ("update", "users")]


def test_a_return_into_a_queue_looks_at_it(
    watched: TestClient, librarian: Account, member: Account
) -> None:
    book = _book(watched, librarian, copies=1)
    assert watched.post(f"{API}/books/{book}/borrow", headers=member.headers).status_code == 201
    email = f"waiting-{uuid.uuid4().hex[:8]}@example.com"
    account = {"name": "Waiting", "email": email, "password": PASSWORD}
    assert watched.post(f"{API}/auth/register", json=account).status_code == 201
    waiting = {"Authorization": f"Bearer {login(watched, email, PASSWORD)['access_token']}"}
    reserved = watched.post(f"{API}/books/{book}/reservations", headers=waiting)
    assert reserved.status_code == 201, reserved.text
    returned = _commands(
        lambda: watched.post(f"{API}/books/{book}/return", headers=member.headers), 200
    )
    assert ("findAndModify", "reservations") in returned


_AVAILABILITY = sorted([("find", "books"), ("find", "loans"), ("find", "reservations")])


def test_availability_is_three_commands_beyond_authentication(
    watched: TestClient, librarian: Account, member: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, other = _book(watched, librarian, copies=1), _book(watched, librarian)

    def look(headers: dict[str, str]) -> list[tuple[str, str]]:
        url = f"{API}/books/{book}/availability"
        seen = _commands(lambda: watched.get(url, headers=headers), 200)
        assert seen[: len(AUTH)] == AUTH
        return sorted(seen[len(AUTH) :])

    assert look(member.headers) == _AVAILABILITY
    assert watched.post(f"{API}/books/{other}/borrow", headers=member.headers).status_code == 201
    assert watched.post(f"{API}/books/{book}/borrow", headers=member.headers).status_code == 201
    assert look(member.headers) == _AVAILABILITY
    # Loans that may be overdue: the question rides on the same loans query.
    clock.advance(timedelta(days=15))
    headers = {"Authorization": f"Bearer {login(watched, member.email, PASSWORD)['access_token']}"}
    assert look(headers) == _AVAILABILITY
    # Fines that can block: the open balance is on the reader's record, no fourth command.
    settings = watched.app.state.runtime.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "fine_per_day_cents", 50)
    assert look(headers) == _AVAILABILITY
