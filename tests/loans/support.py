"""A circulation desk for the loan and reservation tests, everything through the HTTP API."""

import contextlib
import io
import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from bson import ObjectId
from httpx2 import Response
from starlette.testclient import TestClient

from library_api import clock, config
from library_api.cli import main as cli_main
from library_api.config import Settings
from tests.conftest import Account, login

API = "/api/v1"
_isbns = itertools.count(1)


def isbn13() -> str:
    body = f"978{uuid.uuid4().int % 10**6:06d}{next(_isbns) % 1000:03d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


class Desk:
    def __init__(self, client: TestClient, librarian: Account) -> None:
        self.client = client
        self.librarian = librarian
        self._issued: dict[str, datetime] = {}

    def headers(self, account: Account) -> dict[str, str]:
        """A valid bearer header even after the test moved the clock past the token's life."""
        # Fixture accounts logged in before the test moved the clock (it starts at real time).
        issued = self._issued.setdefault(account.email, datetime.now(UTC))
        if abs(clock.now() - issued) > timedelta(minutes=10):
            tokens = login(self.client, account.email, account.password)
            account.access_token = tokens["access_token"]
            self._issued[account.email] = clock.now()
        return account.headers

    def book(self, copies: int = 1, title: str = "Dune") -> str:
        response = self.client.post(
            f"{API}/books",
            json={
                "title": title,
                "authors": ["A. Writer"],
                "isbn": isbn13(),
                "total_copies": copies,
            },
            headers=self.headers(self.librarian),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def copies(self, book_id: str) -> int:
        response = self.client.get(f"{API}/books/{book_id}", headers=self.headers(self.librarian))
        assert response.status_code == 200, response.text
        return int(response.json()["available_copies"])

    def borrow(self, account: Account, book_id: str, **body: Any) -> Response:
        return self.client.post(
            f"{API}/books/{book_id}/borrow", json=body or None, headers=self.headers(account)
        )

    def lend(self, account: Account, book_id: str) -> dict[str, Any]:
        response = self.borrow(account, book_id)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def give_back(self, account: Account, book_id: str) -> Response:
        return self.client.post(f"{API}/books/{book_id}/return", headers=self.headers(account))

    def reserve(self, account: Account, book_id: str) -> Response:
        return self.client.post(
            f"{API}/books/{book_id}/reservations", headers=self.headers(account)
        )

    def hold(self, account: Account, book_id: str) -> dict[str, Any]:
        response = self.reserve(account, book_id)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def my_reservations(self, account: Account) -> list[dict[str, Any]]:
        response = self.client.get(
            f"{API}/reservations/me", params={"page_size": 100}, headers=self.headers(account)
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]

    def reservation(self, account: Account, book_id: str) -> dict[str, Any]:
        """The account's newest reservation of a book."""
        return next(r for r in self.my_reservations(account) if r["book_id"] == book_id)


def finish_borrow(raw_db: Any, account: Account, book_id: str, title: str) -> None:
    """The last write of a borrow held up after it took its slot and copy: its loan."""
    now = clock.now()
    raw_db.loans.insert_one(
        {
            "book_id": ObjectId(book_id),
            "user_id": ObjectId(account.id),
            "book_title": title,
            "borrowed_at": now,
            "due_at": now + timedelta(days=14),
            "returned_at": None,
            "renewals": 0,
            "status": "active",
            "active_key": f"{account.id}:{book_id}",
        }
    )


@pytest.fixture
def desk(client: TestClient, librarian: Account) -> Desk:
    return Desk(client, librarian)


def run_cli(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    output: io.StringIO | None = None,
) -> tuple[int, str]:
    """`library-api <argv>` in this process against the test database: (exit status, output).

    Pass `output` to read what the command prints while it runs (from another thread).
    """
    assert settings.mongodb_url and settings.jwt_secret
    monkeypatch.setenv("MONGODB_URL", settings.mongodb_url)
    monkeypatch.setenv("MONGODB_DB", settings.mongodb_db)
    monkeypatch.setenv("JWT_SECRET", settings.jwt_secret)
    config.get_settings.cache_clear()
    output = output or io.StringIO()
    status = 0
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            cli_main(list(argv))
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        config.get_settings.cache_clear()
        # Beanie's binding is process-wide: point the app's documents back at its own client.
        database = client.app.state.runtime.database  # type: ignore[attr-defined]
        client.portal.call(partial(database.bind, indexes=False))  # type: ignore[union-attr]
    return status, output.getvalue()


@pytest.fixture
def consistency(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], tuple[int, str]]:
    def check() -> tuple[int, str]:
        return run_cli(client, settings, monkeypatch, "check-consistency")

    return check


@pytest.fixture
def assert_consistent(consistency: Callable[[], tuple[int, str]]) -> Iterator[Callable[[], None]]:
    def check() -> None:
        status, output = consistency()
        assert status == 0, output
        assert "consistent" in output

    yield check
