"""A database that freezes (SIGSTOP) gets 503 database_unavailable quickly, then recovers.

The database runs in a process of its own, so it can be frozen while the app keeps running.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.books.conftest import isbn13
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login

TIMEOUT = 1.0
# Beyond MONGODB_TIMEOUT_SECONDS: the app's own work on two shared cores, and a request's
# remaining database operations after the one the freeze caught.
MARGIN = 2.0
BOOKS = "/api/v1/books"

SERVE = """
import sys, time
from library_api.db import EmbeddedServer
print(EmbeddedServer(sys.argv[1]).start(), flush=True)
while True:
    time.sleep(3600)
"""


@dataclass
class Outcome:
    started: float
    ended: float
    status: int
    code: str | None


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tmp_path / "data" / "library.sqlite3")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        uri = process.stdout.readline().strip()
        assert uri.startswith("mongodb://"), "the database process did not start"
        yield process, uri
    finally:
        # Whatever happened, never leave a stopped process behind.
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(timeout=30)


def _call(app: TestClient, path: str, headers: dict[str, str]) -> Outcome:
    started = time.monotonic()
    response = app.get(path, headers=headers)
    code = response.json().get("code") if response.status_code >= 400 else None
    return Outcome(started, time.monotonic(), response.status_code, code)


def test_a_frozen_database_answers_503_within_the_timeout_and_recovers(
    database: tuple[subprocess.Popen[str], str], app_with: Callable[..., Any]
) -> None:
    process, uri = database
    with app_with(mongodb_url=uri, mongodb_timeout_seconds=TIMEOUT) as app:
        token = login(app, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for n in range(3):
            book = {"title": f"Book {n}", "authors": ["A"], "isbn": isbn13(7100 + n)}
            assert app.post(BOOKS, json=book, headers=headers).status_code == 201, book
        assert _call(app, BOOKS, headers).status == 200

        # Load: requests are always in flight on the database when it freezes.
        stop = threading.Event()
        outcomes: list[Outcome] = []

        def load() -> None:
            while not stop.is_set():
                outcomes.append(_call(app, BOOKS, headers))

        workers = [threading.Thread(target=load) for _ in range(3)]
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        frozen_at = time.monotonic()
        os.kill(process.pid, signal.SIGSTOP)
        try:
            stop.set()
            for worker in workers:
                worker.join(timeout=TIMEOUT + MARGIN + 5)
            hung = [w for w in workers if w.is_alive()]
            assert not hung, "requests in flight still hang on the frozen database"
            in_flight = [o for o in outcomes if o.started < frozen_at < o.ended]
            assert in_flight, "no request was in flight when the database froze"
            for outcome in in_flight:
                assert outcome.ended - frozen_at < TIMEOUT + MARGIN
                assert outcome.status in (200, 503)
                if outcome.status == 503:
                    assert outcome.code == "database_unavailable"
            assert any(o.status == 503 for o in in_flight), "every request finished in time"

            # New requests, while it stays frozen: the same, each on its own.
            for path in (BOOKS, "/ready", BOOKS):
                outcome = _call(app, path, headers)
                assert (outcome.status, outcome.code) == (503, "database_unavailable"), path
                assert outcome.ended - outcome.started < TIMEOUT + MARGIN, path
        finally:
            os.kill(process.pid, signal.SIGCONT)

        # Back again: the same app, the same token, no restart.
        deadline = time.monotonic() + 20
        while _call(app, "/ready", headers).status != 200:
            assert time.monotonic() < deadline, "did not recover after the database came back"
            time.sleep(0.2)
        listed = app.get(BOOKS, headers=headers)
        assert listed.status_code == 200
        assert listed.json()["total"] == 3
