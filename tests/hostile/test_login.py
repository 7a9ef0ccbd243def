"""Hostile logins: names no account can have, and bursts of wrong passwords."""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from httpx2 import Response
from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import PASSWORD, Account

LOGIN = "/api/v1/auth/login"
WRONG = {
    "detail": "Incorrect email or password",
    "code": "invalid_credentials",
    "error": "invalid_grant",
    "error_description": "Incorrect email or password",
}


def _login(client: TestClient, username: str, password: str) -> Response:
    return client.post(LOGIN, data={"username": username, "password": password})


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls from as many threads, released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_oversized_usernames_are_refused_and_leave_nothing_stored(
    client: TestClient, member: Account, raw_db: Any
) -> None:
    # Each well under the 1 MB body limit, so it is the login that refuses it.
    for i in range(20):
        username = f"{i}-" + "x" * 200_000 + "@example.com"
        response = _login(client, username, "some password")
        assert response.status_code == 401, response.text[:200]
        assert response.json() == WRONG
    assert raw_db.login_attempts.count_documents({}) == 0
    # Refused before anything counted: the member's own login is untouched.
    assert _login(client, member.email, PASSWORD).status_code == 200


@pytest.mark.parametrize(
    "username",
    [
        "a" * 310 + "@example.com",  # over 320 characters
        "x" * 250 + "@example.com",  # under 320, but no address is over 254
        "not-an-email",
        "two@@example.com",
        "   ",
        "nul\x00@example.com",
    ],
)
def test_a_username_that_is_not_an_email_is_a_wrong_email(
    client: TestClient, raw_db: Any, username: str
) -> None:
    response = _login(client, username, "some password")
    assert response.status_code == 401
    assert response.json() == WRONG
    assert response.headers["www-authenticate"] == "Bearer"
    assert raw_db.login_attempts.count_documents({}) == 0


def test_an_oversized_password_is_refused_before_it_is_counted(
    client: TestClient, member: Account, raw_db: Any
) -> None:
    huge = _login(client, member.email, "p" * 1025)
    assert huge.status_code == 401
    assert huge.json() == WRONG
    assert raw_db.login_attempts.count_documents({}) == 0
    # At the bound it is an ordinary wrong password, counted as one.
    assert _login(client, member.email, "p" * 1024).status_code == 401
    assert raw_db.login_attempts.count_documents({"email": member.email}) == 1


def test_login_names_the_account_as_registration_normalised_it(
    client: TestClient, member: Account, raw_db: Any
) -> None:
    for variant in (f"  {member.email.upper()}\t", f"\n{member.email.title()} "):
        assert _login(client, variant, "wrong password").status_code == 401
    # Every spelling counted against the one address, not stored as typed.
    assert {a["email"] for a in raw_db.login_attempts.find()} == {member.email}
    assert _login(client, member.email.upper(), PASSWORD).status_code == 200


def test_a_burst_of_wrong_passwords_answers_401_or_429_and_stays_locked(
    client: TestClient, member: Account, raw_db: Any
) -> None:
    responses = _at_once([lambda: _login(client, member.email, "wrong guess")] * 20)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {401, 429}, statuses
    # No more guesses checked than the limit allows.
    assert statuses[401] <= 5, statuses
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["code"] == "too_many_attempts"
        assert int(refused.headers["retry-after"]) >= 1
    # The burst locked the email: even the right password now waits.
    assert raw_db.login_attempts.count_documents({"email": member.email}) >= 5
    locked = _login(client, member.email, PASSWORD)
    assert locked.status_code == 429
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 900
    # ... and no longer than it said.
    clock.advance(timedelta(seconds=retry_after + 1))
    assert _login(client, member.email, PASSWORD).status_code == 200


def test_retry_after_counts_from_the_oldest_failure(client: TestClient, member: Account) -> None:
    for _ in range(5):
        assert _login(client, member.email, "wrong password").status_code == 401
        clock.advance(timedelta(seconds=100))
    # The first failure leaves the 900 s window 400 s from now.
    locked = _login(client, member.email, PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) == 400
    clock.advance(timedelta(seconds=399))
    assert _login(client, member.email, PASSWORD).status_code == 429
    clock.advance(timedelta(seconds=2))
    assert _login(client, member.email, PASSWORD).status_code == 200
