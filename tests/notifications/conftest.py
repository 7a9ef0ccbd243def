"""A circulation desk for tests: books, loans and reservations made through the HTTP API."""

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from library_api import clock
from library_api.config import Settings
from tests.conftest import Account, login

API = "/api/v1"
_serial = itertools.count(1)


def isbn13(serial: int) -> str:
    body = f"979{serial:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def when(moment: datetime | str) -> str:
    """How messages write a time."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class Desk:
    def __init__(self, client: TestClient, admin: Account, librarian: Account) -> None:
        self.client = client
        self.admin = admin
        self.librarian = librarian
        self._tokens: dict[str, tuple[datetime, dict[str, str]]] = {}

    def headers(self, account: Account) -> dict[str, str]:
        """A bearer header valid now: tests move the clock past the token lifetime."""
        issued, headers = self._tokens.get(account.email, (None, None))
        if issued is None or headers is None or abs(clock.now() - issued) > timedelta(minutes=10):
            tokens = login(self.client, account.email, account.password)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            self._tokens[account.email] = (clock.now(), headers)
        return headers

    def book(self, title: str = "Dune", copies: int = 1) -> dict[str, Any]:
        payload = {
            "title": title,
            "authors": ["Frank Herbert"],
            "isbn": isbn13(next(_serial)),
            "total_copies": copies,
        }
        response = self.client.post(
            f"{API}/books", json=payload, headers=self.headers(self.librarian)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def borrow(self, account: Account, book: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            f"{API}/books/{book['id']}/borrow", headers=self.headers(account)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def give_back(self, account: Account, book: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            f"{API}/books/{book['id']}/return", headers=self.headers(account)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def reserve(self, account: Account, book: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            f"{API}/books/{book['id']}/reservations", headers=self.headers(account)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def scan(self, client: TestClient | None = None) -> int:
        response = (client or self.client).post(
            f"{API}/admin/notifications/run", headers=self.headers(self.admin)
        )
        assert response.status_code == 200, response.text
        created: int = response.json()["created"]
        return created

    def notifications(self, account: Account, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get(
            f"{API}/notifications/me",
            params={"page_size": 100, **params},
            headers=self.headers(account),
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
def desk(client: TestClient, admin: Account, librarian: Account) -> Desk:
    return Desk(client, admin, librarian)


@pytest.fixture
def make_desk(admin: Account, librarian: Account) -> Callable[[TestClient], Desk]:
    """The same desk on another app instance (tokens work on every instance)."""
    return lambda other: Desk(other, admin, librarian)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SecondInstance:
    """Another API instance in its own process on the same database (and on real time).

    Two apps cannot serve at once inside one process: Beanie's binding is process-wide and
    each app's driver belongs to its own event loop. It boots while the test sets up data;
    `http()` waits until it is ready.
    """

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "MONGODB_URL": str(settings.mongodb_url),
            "MONGODB_DB": settings.mongodb_db,
            "JWT_SECRET": str(settings.jwt_secret),
            "UPLOADS_DIR": str(workdir),
            "NOTIFY_INTERVAL_SECONDS": "0",
            "CONSISTENCY_INTERVAL_SECONDS": "0",
            "ADMIN_EMAIL": "",
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "library_api.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._http = httpx2.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def http(self) -> httpx2.Client:
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(self.process.stderr and self.process.stderr.read())
            try:
                if self._http.get("/ready").status_code == 200:
                    return self._http
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the second instance did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self._http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def second_instance(settings: Settings, tmp_path: Path) -> Iterator[SecondInstance]:
    instance = SecondInstance(settings, tmp_path)
    try:
        yield instance
    finally:
        instance.stop()
