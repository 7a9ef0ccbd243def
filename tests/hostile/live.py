"""`library-api serve` as a real process on a free port, for what only a socket can send.

It serves the test session's database, so the in-process `client` fixtures and the live
server see the same accounts and books.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from library_api.config import Settings


@dataclass
class Live:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def connect(self, timeout: float = 10) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.settimeout(timeout)
        return sock

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def exchange(sock: socket.socket, data: bytes) -> bytes:
    """Sends `data`, then reads until the server closes or goes quiet."""
    with suppress(OSError):
        sock.sendall(data)
    return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    received = b""
    with suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@contextmanager
def live_server(settings: Settings, folder: Path, **env: str) -> Iterator[Live]:
    port = free_port()
    environ = {
        **os.environ,
        "MONGODB_URL": settings.mongodb_url or "",
        "MONGODB_DB": settings.mongodb_db,
        "JWT_SECRET": settings.jwt_secret or "",
        "UPLOADS_DIR": str(settings.uploads_dir),
        "ARGON2_MEMORY_KIB": "64",
        "ARGON2_TIME_COST": "1",
        "NOTIFY_INTERVAL_SECONDS": "0",
        "CONSISTENCY_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        **env,
    }
    log = folder / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "library_api.cli", "serve", "--port", str(port)],
            cwd=folder,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    live = Live(process, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, live.logged()
            assert time.monotonic() < deadline, "the server did not start:\n" + live.logged()
            with suppress(OSError), live.connect(1) as sock:
                if status_of(exchange(sock, health_request())) == 200:
                    break
            time.sleep(0.1)
        yield live
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def health_request() -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
