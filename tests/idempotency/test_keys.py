"""Idempotency-Key on authenticated POSTs: replays, reuse, parallel retries, expiry."""

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from httpx2 import Response
from starlette.testclient import TestClient

from library_api import clock
from tests.books.conftest import book_payload
from tests.conftest import Account, login

API = "/api/v1"


def _post(
    client: TestClient, path: str, account: Account, key: str | None, body: Any = None
) -> Response:
    headers = dict(account.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"{API}{path}", json=body, headers=headers)


@pytest.fixture
def book(client: TestClient, librarian: Account) -> str:
    response = client.post(
        f"{API}/books", json=book_payload(total_copies=3), headers=librarian.headers
    )
    assert response.status_code == 201
    return str(response.json()["id"])


def test_a_repeat_gets_the_first_answer_replayed_and_runs_nothing(
    client: TestClient, member: Account, book: str, raw_db: Any
) -> None:
    first = _post(client, f"/books/{book}/borrow", member, "borrow-1", {})
    again = _post(client, f"/books/{book}/borrow", member, "borrow-1", {})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert raw_db.loans.count_documents({}) == 1


def test_without_a_key_a_repeat_runs_again(client: TestClient, member: Account, book: str) -> None:
    assert _post(client, f"/books/{book}/borrow", member, None, {}).status_code == 201
    repeat = _post(client, f"/books/{book}/borrow", member, None, {})
    assert repeat.json()["code"] == "already_borrowed"


def test_4xx_answers_are_kept_too(client: TestClient, member: Account) -> None:
    missing = f"/books/{'0' * 24}/borrow"
    first = _post(client, missing, member, "k-404", {})
    again = _post(client, missing, member, "k-404", {})
    assert first.status_code == again.status_code == 404
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("path", "body"),
    [("/books/{book}/borrow", {"user_id": None}), ("/books/{book}/reservations", {})],
)
def test_the_same_key_on_another_request_is_refused(
    client: TestClient, member: Account, book: str, raw_db: Any, path: str, body: Any
) -> None:
    assert _post(client, f"/books/{book}/borrow", member, "k", {}).status_code == 201
    other = _post(client, path.format(book=book), member, "k", body)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert raw_db.reservations.count_documents({}) == 0


def test_keys_of_different_users_never_collide(
    client: TestClient, member: Account, other_member: Account, book: str, raw_db: Any
) -> None:
    mine = _post(client, f"/books/{book}/borrow", member, "same-key", {})
    theirs = _post(client, f"/books/{book}/borrow", other_member, "same-key", {})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["user_id"] != theirs.json()["user_id"]
    assert "idempotent-replayed" not in theirs.headers
    assert raw_db.loans.count_documents({}) == 2


def test_eight_parallel_retries_have_exactly_one_effect(
    client: TestClient, librarian: Account, raw_db: Any
) -> None:
    payload = book_payload()
    start = threading.Barrier(8)

    def attempt() -> Response:
        start.wait()
        return _post(client, "/books", librarian, "create-once", payload)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: attempt(), range(8)))
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    assert raw_db.books.count_documents({}) == 1
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["code"] == "request_in_progress"
    # Once the first is done, every retry is a replay of it.
    replay = _post(client, "/books", librarian, "create-once", payload)
    assert replay.status_code == 201
    assert replay.json()["id"] in created


def test_a_key_expires_after_idempotency_hours(
    client: TestClient, member: Account, book: str
) -> None:
    assert _post(client, f"/books/{book}/borrow", member, "k-exp", {}).status_code == 201
    assert _post(client, f"/books/{book}/return", member, None).status_code == 200
    clock.advance(timedelta(hours=24, seconds=1))
    member.access_token = login(client, member.email, member.password)["access_token"]
    fresh = _post(client, f"/books/{book}/borrow", member, "k-exp", {})
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\tkey", "é"])
def test_a_malformed_key_is_a_422(client: TestClient, member: Account, book: str, key: str) -> None:
    response = client.post(
        f"{API}/books/{book}/borrow",
        json={},
        headers={**member.headers, "Idempotency-Key": key.encode()},  # type: ignore[dict-item]
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_idempotency_key"


def test_unauthenticated_posts_ignore_the_key(
    client: TestClient, make_account: Callable[..., Account]
) -> None:
    body = {"name": "N", "email": f"n-{uuid.uuid4().hex[:6]}@example.com", "password": "x" * 20}
    headers = {"Idempotency-Key": "reg"}
    assert client.post(f"{API}/auth/register", json=body, headers=headers).status_code == 201
    again = client.post(f"{API}/auth/register", json=body, headers=headers)
    assert again.status_code == 409
    assert "idempotent-replayed" not in again.headers
