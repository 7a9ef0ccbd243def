"""The throw-away server the benchmarks run against: bench/borrow.py, search.py and upload.py.

`running(folder, env)` starts `library-api serve` (or another command line) on a free 127.0.0.1
port with the embedded database in `folder`, waits until it answers `/ready`, and stops it on
leaving the block; `server_env` is the environment it runs in, `use_in_process` points this
process at the same database for an in-process app, and `login`/`bearer` sign a client in.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

API = "/api/v1"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench admin passphrase"
JWT_SECRET = "bench-secret-" + "x" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(folder: Path, mongodb_url: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment, without MONGODB_URL unless `mongodb_url` is given (then with a
    throw-away MONGODB_DB named after `folder`), the database and uploads in `folder`, the
    bootstrap admin, no notification loop, quiet logs; `extra` adds or overrides variables."""
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URL"}
    if mongodb_url:
        env.update(MONGODB_URL=mongodb_url, MONGODB_DB=folder.name.replace("-", "_"))
    env.update(
        EMBEDDED_DB_PATH=str(folder / "library.sqlite3"),
        UPLOADS_DIR=str(folder / "uploads"),
        JWT_SECRET=JWT_SECRET,
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        NOTIFY_INTERVAL_SECONDS="0",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def use_in_process(env: dict[str, str]) -> None:
    """Makes this process's settings those of `env` (from `server_env`), for an in-process app."""
    os.environ.pop("MONGODB_URL", None)
    os.environ.update(env)
    from library_api.config import get_settings

    get_settings.cache_clear()


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "library_api.cli", "serve", "--port", str(port)]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_ready(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited with {server.process.returncode}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(f"{server.base}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the server did not become ready in time")


@contextlib.contextmanager
def running(
    folder: Path,
    env: dict[str, str],
    command: Callable[[int], Sequence[str]] = serve_command,
    log: Path | None = None,
) -> Iterator[Server]:
    """The server `command(port)` started in `folder` with `env`, once ready; stopped on leaving.

    With `log`, the server's output goes to that file and its last 3,000 characters are printed
    to stderr if the block fails; without, the server writes to this process's stdout/stderr.
    """
    port = free_port()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log else None
        process = subprocess.Popen(  # noqa: S603 (a fixed command line)
            command(port),
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT if log else None,
        )
        server = Server(process, port)
        try:
            wait_ready(server, time.monotonic() + 60)
            yield server
        except BaseException:
            if log:
                print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def login(client: Any, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    """An access token, from POST /auth/login on `client` (an httpx2 or a Starlette test client)."""
    response = client.post(f"{API}/auth/login", data={"username": email, "password": password})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def bearer(client: Any, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, email, password)}"}
