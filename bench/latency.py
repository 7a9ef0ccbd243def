"""Small-request latency benchmark: `python bench/latency.py` (`--help` for the options).

Starts the server on a free 127.0.0.1 port (bench/server.py: the embedded database in a
temporary folder), seeds a small catalogue (`--books`) through POST /books/import, then times
two small requests, each first from one client (N in a row) and then from `--clients` clients
at once (N in all; N is `--requests` for /health, `--page-requests` for /books):

- `GET /health`: no database, no authentication: the HTTP server and the middleware stack;
- `GET /api/v1/books?page_size=20` with a bearer token: authentication (2 database reads) and
  a page of 20 books with its count.

`--server serve` (the default) runs `library-api serve` of the code this interpreter imports
(the `library_api` it resolves, printed first); `--server uvicorn` runs the same app on plain
uvicorn (httptools, uvloop), for comparison. The clients are raw HTTP/1.1 on keep-alive
sockets, one per client thread, so that the client costs as little as it can. Reports
p50/p95/p99 latency and requests/s.
"""

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx2

from search import HEADER, book_rows
from server import API, login, running, serve_command, server_env

Command = Callable[[int], list[str]]


def uvicorn_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "library_api.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


COMMANDS: dict[str, Command] = {"serve": serve_command, "uvicorn": uvicorn_command}


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.pending = b""

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(60)
        self.sock, self.pending = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, raw: bytes) -> tuple[int, bytes]:
        sock = self.sock or self._open()
        sock.sendall(raw)
        data = self.pending
        while b"\r\n\r\n" not in data:
            got = sock.recv(65536)
            if not got:
                raise ConnectionError("connection closed before the answer")
            data += got
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(headers["content-length"])
        while len(rest) < length:
            got = sock.recv(65536)
            if not got:
                raise ConnectionError("answer cut short")
            rest += got
        body, self.pending = rest[:length], rest[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(lines[0].split()[1]), body


def request_bytes(path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def timed(port: int, raw: bytes, count: int, out: list[float]) -> None:
    connection = Connection(port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            status, body = connection.request(raw)
            out.append(time.perf_counter() - started)
            if status != 200:
                raise SystemExit(f"{raw.split(b' ')[1].decode()}: {status} {body[:200]!r}")
    finally:
        connection.close()


def measure(port: int, raw: bytes, requests: int, clients: int) -> dict[str, float]:
    """`requests` in all, spread over `clients` threads with a connection each."""
    per_client: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=timed, args=(port, raw, requests // clients, out))
        for out in per_client
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies = [t for out in per_client for t in out]
    if len(latencies) != requests // clients * clients:
        raise SystemExit("a client failed (see above)")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": cuts[49] * 1000,
        "p95": cuts[94] * 1000,
        "p99": cuts[98] * 1000,
        "max": max(latencies) * 1000,
    }


def describe(env: dict[str, str], server: str) -> str:
    """Where the server's `library_api` comes from, and the versions it runs with."""
    probe = "import library_api; print(library_api.__file__)"
    where = subprocess.run(  # noqa: S603 (a fixed command line)
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    names = ["granian", "uvicorn", "httptools", "uvloop"]
    found = []
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name} {version(name)}")
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"server {server!r}, library_api from {where}\n"
        f"machine: {cpu}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"{', '.join(found)}; load average {os.getloadavg()[0]:.1f}"
    )


def seed(base: str, token: str, books: int) -> None:
    content = HEADER + "\n".join(book_rows(books, random.Random(7))) + "\n"
    files = {"file": ("books.csv", content.encode(), "text/csv")}
    with httpx2.Client(base_url=base, timeout=600) as client:
        answer = client.post(
            f"{API}/books/import", files=files, headers={"Authorization": f"Bearer {token}"}
        )
    report = answer.json()
    if answer.status_code != 200 or report.get("errors"):
        raise SystemExit(f"seeding failed: {answer.status_code} {str(report)[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--server",
        choices=sorted(COMMANDS),
        default="serve",
        help="serve: `library-api serve` (default); uvicorn: the app on plain uvicorn, httptools",
    )
    parser.add_argument("--books", type=int, default=100, help="catalogue size (default 100)")
    parser.add_argument("--requests", type=int, default=2000, help="GET /health, per run")
    parser.add_argument("--page-requests", type=int, default=1000, help="GET /books, per run")
    parser.add_argument("--clients", type=int, default=8, help="for the concurrent runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="library-bench-latency-"))
    env = server_env(folder, ACCESS_TOKEN_MINUTES="600")
    print(describe(env, args.server))
    results: dict[str, dict[str, float]] = {}
    try:
        run(folder, env, args, results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def run(
    folder: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    results: dict[str, dict[str, float]],
) -> None:
    with running(folder, env, COMMANDS[args.server], log=folder / "server.log") as server:
        with httpx2.Client(base_url=server.base) as client:
            token = login(client)
        started = time.perf_counter()
        seed(server.base, token, args.books)
        print(f"seeded {args.books} books in {time.perf_counter() - started:.1f} s")
        page = request_bytes(f"{API}/books?page_size=20", token)
        check = Connection(server.port)
        status, body = check.request(page)
        check.close()
        assert status == 200 and len(json.loads(body)["items"]) == 20, body[:300]
        cases = {
            "GET /health": (request_bytes("/health", None), args.requests),
            "GET /books?page_size=20": (page, args.page_requests),
        }
        print(
            f"{'request':24} {'clients':>7} {'n':>5} {'req/s':>7} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        )
        for label, (raw, requests) in cases.items():
            measure(server.port, raw, 50, 1)  # warm-up
            for clients in (1, args.clients):
                got = measure(server.port, raw, requests, clients)
                results[f"{label} x{clients}"] = got
                print(
                    f"{label:24} {clients:7} {got['requests']:5.0f} {got['rps']:7.0f} "
                    f"{got['p50']:7.2f} {got['p95']:7.2f} {got['p99']:7.2f} {got['max']:7.1f}"
                )


if __name__ == "__main__":
    main()
