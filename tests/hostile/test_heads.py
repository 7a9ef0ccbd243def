"""What only a raw socket can send to `library-api serve`: huge or slow heads, stalled bodies,
framing the app must never half-run, and uploads refused before their bodies arrive."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from library_api.config import Settings
from tests.books.conftest import book_payload
from tests.conftest import Account
from tests.files.conftest import PDF, multipart, sized
from tests.hostile.live import Live, exchange, health_request, live_server, read_all, status_of

MiB = 1 << 20


@pytest.fixture(scope="module")
def live(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(
        settings, tmp_path_factory.mktemp("live"), HEADER_TIMEOUT_SECONDS="1"
    ) as server:
        yield server


def _health_seconds(live: Live) -> float:
    started = time.monotonic()
    with live.connect() as sock:
        assert status_of(exchange(sock, health_request())) == 200
    return time.monotonic() - started


def _send_huge_head(live: Live, answers: list[bytes]) -> None:
    with live.connect(20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: ")
        sent = 0
        with suppress(OSError):  # the server answered and closed: the rest has nowhere to go
            while sent < 64 * MiB:
                sent += sock.send(b"a" * 65536)
        answers.append(read_all(sock))


def test_huge_heads_are_refused_early_and_cost_the_others_nothing(live: Live) -> None:
    before = live.rss_kib()
    answers: list[bytes] = []
    senders = [threading.Thread(target=_send_huge_head, args=(live, answers)) for _ in range(8)]
    for sender in senders:
        sender.start()
    slowest = max(_health_seconds(live) for _ in range(5))
    for sender in senders:
        sender.join(30)
    assert len(answers) == 8
    assert all(status_of(answer) in (400, 431) for answer in answers), answers
    assert slowest < 1.0
    # Each head was dropped after its first 64 KiB, not buffered: 8 x 64 MiB left no trace.
    assert live.rss_kib() - before < 32 * 1024


def test_a_head_over_max_header_bytes_gets_a_json_431_and_a_closed_connection(
    live: Live,
) -> None:
    with live.connect() as sock:
        answer = exchange(
            sock, b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        )
    assert status_of(answer) == 431
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b'"code": "header_too_large"' in body
    # read_all returned: the server closed the connection after answering.


def test_a_head_that_stalls_half_way_is_closed_after_the_header_timeout(live: Live) -> None:
    with live.connect(20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        answer = read_all(sock)
        waited = time.monotonic() - started
    assert status_of(answer) in (0, 408)  # closed, with or without a word
    assert 0.5 < waited < 5


def test_a_connection_that_sends_nothing_is_closed_too(live: Live) -> None:
    with live.connect(20) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - started < 5


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(
    live: Live, admin: Account
) -> None:
    head = (
        "POST /api/v1/auth/refresh HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    with live.connect(20) as sock:
        started = time.monotonic()
        answer = exchange(sock, head.encode() + b'{"refresh_token": "')
        waited = time.monotonic() - started
    assert status_of(answer) == 408, answer
    assert b'"code": "body_timeout"' in answer
    assert 0.5 < waited < 5


def test_a_content_length_of_thousands_of_zeros_is_answered_by_the_app_or_not_run(
    live: Live, client: TestClient, admin: Account
) -> None:
    head = (
        "POST /api/v1/auth/logout HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {admin.access_token}\r\n"
        f"Content-Length: {'0' * 4301}\r\nConnection: close\r\n\r\n"
    )
    with live.connect() as sock:
        answer = exchange(sock, head.encode())
    after = client.get("/api/v1/users/me", headers=admin.headers).status_code
    if status_of(answer) == 204:
        assert b"x-request-id" in answer  # the app answered, so it ran
        assert after == 401
    else:
        assert 400 <= status_of(answer) < 500
        assert after == 200  # refused before the app: the session is still live


@pytest.mark.parametrize("path", ["cover", "document"])
def test_a_refused_upload_closes_the_connection_instead_of_draining_it(
    live: Live, path: str
) -> None:
    size = 64 * MiB
    head = (
        f"PUT /api/v1/books/{'a' * 24}/{path} HTTP/1.1\r\nHost: t\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    with live.connect(20) as sock:
        sock.sendall(head.encode())
        sent = 0
        with suppress(OSError):
            while sent < size:
                sent += sock.send(b"x" * 65536)
        answer = read_all(sock)
    assert status_of(answer) == 401
    assert b"connection: close" in answer.lower()
    assert sent < size  # the server stopped taking the body


def test_keep_alive_still_serves_several_requests_on_one_connection(live: Live) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    with live.connect() as sock:
        sock.sendall(request * 3)
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_WR)
        answer = read_all(sock)
    assert answer.count(b"HTTP/1.1 200") == 3


def test_the_server_logs_each_refusal_once_without_a_traceback(live: Live) -> None:
    marker = "x-marker-" + str(time.monotonic_ns())
    with live.connect() as sock:
        exchange(sock, f"GET /{marker} HTTP/1.1\r\nX-Big: {'a' * 20_000}\r\n\r\n".encode())
    time.sleep(0.2)
    log = live.logged()
    assert "Traceback" not in log
    assert log.count(f"refused GET /{marker}: request head over") == 1


def test_a_stalled_upload_gets_408_and_leaves_no_file_behind(
    live: Live, client: TestClient, librarian: Account, settings: Settings
) -> None:
    created = client.post("/api/v1/books", json=book_payload(), headers=librarian.headers)
    book = created.json()["id"]
    body, headers = multipart(sized(PDF, 200_000), "doc.pdf", "application/pdf")
    head = (
        f"PUT /api/v1/books/{book}/document HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: {librarian.headers['Authorization']}\r\n"
        f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with live.connect(20) as sock:
        answer = exchange(sock, head.encode() + body[: len(body) // 2])
    assert status_of(answer) == 408, answer[:300]
    assert b'"code": "body_timeout"' in answer
    assert list(Path(settings.uploads_dir).iterdir()) == []
    assert client.get(f"/api/v1/books/{book}", headers=librarian.headers).json()["document"] is None
