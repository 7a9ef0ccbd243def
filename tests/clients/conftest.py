"""`library-api serve` as a real process, for clients that only speak HTTP (Node, Chromium).

Each test module that asks starts one server on a free port, on an in-memory embedded
database, with an admin from ADMIN_EMAIL/ADMIN_PASSWORD, in a folder of its own (so no
`.env` of the checkout is read).
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an admin passphrase for clients"


@dataclass(frozen=True)
class LiveApi:
    base: str
    admin_email: str
    admin_password: str
    log: Path


def require(available: bool, reason: str) -> None:
    """Skips without a tool, with the reason; in CI (`CI` set) a missing tool fails instead."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    folder = tmp_path_factory.mktemp("live-api")
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "PORT")}
    environ.update(
        EMBEDDED_DB_PATH=":memory:",
        JWT_SECRET="live-client-tests-" + "k" * 40,
        UPLOADS_DIR=str(folder / "uploads"),
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        ARGON2_MEMORY_KIB="64",
        ARGON2_TIME_COST="1",
        NOTIFY_INTERVAL_SECONDS="0",
        LOG_LEVEL="WARNING",
    )
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "library_api.cli", "serve", "--port", str(port)],
            cwd=folder,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"library-api serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield LiveApi(base, ADMIN_EMAIL, ADMIN_PASSWORD, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
