"""A stop during a long import, and an import whose client goes away.

The import is long on any database: the most rows a file may have, checked and inserted in
batches. The test waits until the first books exist, then stops the server (or the client).
"""

import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from library_api.books.importer import MAX_IMPORT_ROWS
from library_api.config import Settings
from tests.books.conftest import isbn13
from tests.conftest import Account
from tests.files.conftest import BOUNDARY, multipart
from tests.hostile.live import Live, live_server, read_all, status_of

STOPPED = re.compile(r"import stopped \(([^)]*)\): (\d+) books created")


def _import_request(librarian: Account, key: str | None = None) -> bytes:
    rows = [f"Book {n},Author {n},{isbn13(n)},2001-01-01,Fiction,1" for n in range(MAX_IMPORT_ROWS)]
    csv = ("title,authors,isbn,published_date,genres,total_copies\n" + "\n".join(rows)).encode()
    body, headers = multipart(csv, "catalogue.csv", "text/csv")
    assert headers["Content-Type"].endswith(BOUNDARY)
    head = (
        "POST /api/v1/books/import HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: {librarian.headers['Authorization']}\r\n"
        + (f"Idempotency-Key: {key}\r\n" if key else "")
        + f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _start_import(live: Live, librarian: Account, answers: list[bytes]) -> socket.socket:
    sock = live.connect(120)
    sock.sendall(_import_request(librarian))
    threading.Thread(target=lambda: answers.append(read_all(sock)), daemon=True).start()
    return sock


def _stopped(live: Live) -> tuple[str, int]:
    found = STOPPED.search(live.logged())
    assert found is not None, live.logged()[-3000:]
    return found.group(1), int(found.group(2))


def test_sigterm_lets_requests_finish_for_the_grace_period_then_cancels_them(
    settings: Settings, tmp_path: Path, librarian: Account, raw_db: Any
) -> None:
    with live_server(settings, tmp_path, SHUTDOWN_GRACE_SECONDS="1") as live:
        answers: list[bytes] = []
        with _start_import(live, librarian, answers):
            _wait_for(lambda: raw_db.books.count_documents({}) > 0, 120)
            stopped_at = time.monotonic()
            live.process.send_signal(signal.SIGTERM)
            live.process.wait(20)
            took = time.monotonic() - stopped_at
            _wait_for(lambda: bool(answers), 10)
        assert live.process.returncode == 0, live.logged()[-3000:]
        assert took < 10
        why, created = _stopped(live)
        assert why == "cancelled"
        # What the log says was created is what is there: nothing half-done goes unreported.
        assert raw_db.books.count_documents({}) == created > 0
        assert status_of(answers[0]) in (0, 503), answers[0][:300]
        if answers[0]:
            assert b'"code": "shutting_down"' in answers[0]
        assert "Traceback" not in live.logged()


def test_a_new_connection_is_refused_once_the_stop_begins(
    settings: Settings, tmp_path: Path, librarian: Account, raw_db: Any
) -> None:
    with live_server(settings, tmp_path, SHUTDOWN_GRACE_SECONDS="5") as live:
        answers: list[bytes] = []
        with _start_import(live, librarian, answers):
            _wait_for(lambda: raw_db.books.count_documents({}) > 0, 120)
            live.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(OSError):
                live.connect(2).sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                raise OSError("connected")  # pragma: no cover - reached only if it answered
            live.process.wait(20)


def test_an_import_whose_client_goes_away_stops_at_the_next_batch(
    settings: Settings, tmp_path: Path, librarian: Account, raw_db: Any
) -> None:
    with live_server(settings, tmp_path) as live:
        answers: list[bytes] = []
        sock = _start_import(live, librarian, answers)
        _wait_for(lambda: raw_db.books.count_documents({}) > 0, 120)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        _wait_for(lambda: STOPPED.search(live.logged()) is not None, 60)
        why, created = _stopped(live)
        assert why == "the client went away"
        time.sleep(1)
        assert raw_db.books.count_documents({}) == created > 0
        assert live.process.poll() is None  # the server itself goes on


def test_a_request_cut_off_by_a_stop_keeps_no_idempotency_record(
    settings: Settings, tmp_path: Path, librarian: Account, raw_db: Any
) -> None:
    """A 503 (here: the stop's) is not kept for an Idempotency-Key: its retry runs."""
    with live_server(settings, tmp_path, SHUTDOWN_GRACE_SECONDS="0.5") as live:
        answers: list[bytes] = []
        sock = live.connect(120)
        sock.sendall(_import_request(librarian, key="import-once"))
        threading.Thread(target=lambda: answers.append(read_all(sock)), daemon=True).start()
        _wait_for(lambda: raw_db.books.count_documents({}) > 0, 120)
        assert raw_db.idempotency_keys.count_documents({}) == 1  # claimed while running
        live.process.send_signal(signal.SIGTERM)
        live.process.wait(20)
        _wait_for(lambda: bool(answers), 10)
        sock.close()
    assert status_of(answers[0]) in (0, 503)
    assert raw_db.idempotency_keys.count_documents({}) == 0
    with live_server(settings, tmp_path) as again, again.connect(60) as retry:
        small = _import_request(librarian, key="import-once").split(b"\r\n\r\n", 1)[0]
        assert b"Idempotency-Key: import-once" in small
        answer = exchange_small_import(retry, librarian)
    # Run as a new request (a kept record would answer 422 for this other body, or 409).
    assert status_of(answer) == 200, answer[:300]


def exchange_small_import(sock: socket.socket, librarian: Account) -> bytes:
    csv = b"title,authors,isbn,published_date,genres,total_copies\nOne,A,9780441478125,,,1\n"
    body, headers = multipart(csv, "one.csv", "text/csv")
    head = (
        "POST /api/v1/books/import HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        f"Authorization: {librarian.headers['Authorization']}\r\nIdempotency-Key: import-once\r\n"
        f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return read_all(sock)


def test_open_event_streams_end_at_once_and_do_not_hold_the_stop(
    settings: Settings, tmp_path: Path, member: Account
) -> None:
    """A stream never finishes by itself: waiting the grace for it would only delay the stop
    (its client reconnects, to another instance, with Last-Event-ID)."""
    with live_server(settings, tmp_path, SHUTDOWN_GRACE_SECONDS="30") as live:
        sock = live.connect(30)
        sock.sendall(
            b"GET /api/v1/notifications/stream HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n"
            + f"Authorization: {member.headers['Authorization']}\r\n\r\n".encode()
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        stopped_at = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        live.process.wait(25)
        took = time.monotonic() - stopped_at
        read_all(sock)
        sock.close()
    assert live.process.returncode == 0, live.logged()[-3000:]
    assert took < 10, took
    assert "Traceback" not in live.logged()
