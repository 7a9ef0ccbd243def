"""The HTTP protocol `library-api serve` runs: a body's first message is at most 64 KiB.

A real uvicorn server on a free port, on uvloop and on asyncio's own loop, with a tiny ASGI
app that records what it receives; the client is a raw socket.
"""

import argparse
import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from uvicorn.importer import import_from_string

from library_api import cli
from library_api.server import FIRST_BYTES, HttpProtocol

MiB = 1 << 20


class Recorder:
    """Answers 415 after the first message, or reads the body and answers its SHA-256."""

    def __init__(self) -> None:
        self.first_messages: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/refuse":
            await asyncio.sleep(0.2)  # the app's checks take a while; the client sends meanwhile
            message = await receive()
            self.first_messages.append(len(message["body"]))
            await self._answer(send, 415, b"no")
            return
        digest, more = hashlib.sha256(), True
        while more:
            message = await receive()
            digest.update(message.get("body", b""))
            more = message.get("more_body", False)
        await self._answer(send, 200, digest.hexdigest().encode())

    @staticmethod
    async def _answer(send: Any, status: int, body: bytes) -> None:
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(app: Recorder, loop: str, http: Any = HttpProtocol) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http, loop=loop, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, data = data.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((int(head.split()[1]), data[:length]))
        data = data[length:]
    return answers


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    return read_responses(sock, 1)[0]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_refused_upload_hands_the_app_at_most_64_kib(loop: str) -> None:
    app = Recorder()
    with serving(app, loop) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        size = 8 * MiB
        sock.sendall(f"PUT /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode())
        sock.settimeout(10)
        with contextlib.suppress(OSError):  # the server answered and closed before the end
            sock.sendall(bytes(size))
        status, _ = read_response(sock)
    assert status == 415
    assert app.first_messages and 0 < app.first_messages[0] <= FIRST_BYTES


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_refused_upload_right_behind_another_request_gets_64_kib_too(loop: str) -> None:
    app = Recorder()
    with serving(app, loop) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        first = b"p" * 100_000
        size = 8 * MiB
        sock.sendall(
            f"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len(first)}\r\n\r\n".encode()
            + first
            + f"PUT /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):
            sock.sendall(bytes(size))
        echoed, refused = read_responses(sock, 2)
    assert echoed == (200, hashlib.sha256(first).hexdigest().encode())
    assert refused[0] == 415
    assert app.first_messages and 0 < app.first_messages[0] <= FIRST_BYTES


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_bodies_of_every_size_arrive_whole_on_one_connection(loop: str) -> None:
    sizes = [0, 1, FIRST_BYTES - 1, FIRST_BYTES, FIRST_BYTES + 1, 3 * MiB + 17]
    with serving(Recorder(), loop) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        for size in sizes:
            body = hashlib.shake_256(str(size).encode()).digest(size)
            head = f"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
            sock.sendall(head.encode() + body)
            assert read_response(sock) == (200, hashlib.sha256(body).hexdigest().encode())
        chunks = [b"a" * 70_000, b"b" * 5, b"c" * 300_000]
        framed = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
        head = "PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode() + framed + b"0\r\n\r\n")
        expected = hashlib.sha256(b"".join(chunks)).hexdigest().encode()
        assert read_response(sock) == (200, expected)


def test_serve_runs_uvicorn_with_this_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.delenv("MONGODB_URL", raising=False)
    cli.serve(argparse.Namespace(host="127.0.0.1", port=8000, reload=False))
    assert import_from_string(seen["http"]) is HttpProtocol
