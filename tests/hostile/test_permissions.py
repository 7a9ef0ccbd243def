"""Other local accounts can neither read the embedded database's files nor talk to its server."""

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure
from pymongo.uri_parser import parse_uri

from library_api.config import Settings
from library_api.db import EmbeddedServer
from tests.conftest import PASSWORD

COMPANIONS = ("-wal", "-shm", "-journal")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The service's log lines (its logger does not propagate to the root one)."""
    logger = logging.getLogger("library_api")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def _run_server(path: Path) -> None:
    server = EmbeddedServer(str(path))
    mongo: MongoClient[dict[str, Any]] = MongoClient(server.start())
    try:
        mongo.library.things.insert_one({"kept": True})
    finally:
        mongo.close()
        server.stop()


def test_the_data_directory_and_database_files_are_owner_only(
    tmp_path: Path, app_from: Callable[[Settings], Any]
) -> None:
    umask = _umask()
    data = tmp_path / "data"
    settings = Settings(
        _env_file=None,
        embedded_db_path=str(data / "library.sqlite3"),
        uploads_dir=tmp_path / "uploads",
        argon2_memory_kib=64,
        argon2_time_cost=1,
        notify_interval_seconds=0,
        log_level="WARNING",
    )
    with app_from(settings) as app:
        body = {"name": "Reader", "email": "reader@example.com", "password": PASSWORD}
        assert app.post("/api/v1/auth/register", json=body).status_code == 201
        # Checked while the database is open: that is when SQLite's companions exist.
        assert (data / "library.sqlite3-wal").exists()
        assert _mode(data) == 0o700
        for path in data.iterdir():
            assert _mode(path) == 0o600, path
        assert {"library.sqlite3", "jwt-secret"} <= {p.name for p in data.iterdir()}
    for path in data.iterdir():
        assert _mode(path) == 0o600, path
    # Only what the service creates is restricted: the process keeps its umask (uploads).
    assert _umask() == umask


def test_loose_modes_left_from_before_are_tightened_and_logged_once(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    db_file = data / "library.sqlite3"
    _run_server(db_file)
    data.chmod(0o755)
    db_file.chmod(0o644)
    # A -journal left by a crash in rollback-journal mode, world-readable.
    journal = data / "library.sqlite3-journal"
    journal.touch()
    journal.chmod(0o666)

    _run_server(db_file)
    assert _mode(data) == 0o700
    for path in data.iterdir():
        assert _mode(path) == 0o600, path
    messages = [r.getMessage() for r in logged.records]
    assert sum(f"data directory {data} was open" in m and "mode 755" in m for m in messages) == 1
    assert any(f"{db_file} was open" in m and "mode 644" in m for m in messages)

    logged.clear()
    _run_server(db_file)
    assert not [r for r in logged.records if "was open to other accounts" in r.getMessage()]


def test_a_shared_directory_keeps_its_mode_and_the_files_are_still_private(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: making it 0700 would lock every other account out
    _run_server(shared / "library.sqlite3")
    _run_server(shared / "library.sqlite3")
    assert _mode(shared) == 0o1777
    assert _mode(shared / "library.sqlite3") == 0o600
    warnings = [r for r in logged.records if "shared, so left" in r.getMessage()]
    assert len(warnings) == 1


def test_the_embedded_server_admits_no_one_without_its_password() -> None:
    """mongoeco serves TCP only: any local account can connect, none can log in."""
    server = EmbeddedServer(":memory:")
    uri = server.start()
    try:
        parsed = parse_uri(uri)
        host, port = parsed["nodelist"][0]
        assert parsed["username"] and len(parsed["password"]) >= 32
        stranger: MongoClient[dict[str, Any]] = MongoClient(
            host, port, directConnection=True, serverSelectionTimeoutMS=5000
        )
        guesser: MongoClient[dict[str, Any]] = MongoClient(
            host,
            port,
            directConnection=True,
            username=parsed["username"],
            password="not-the-password",
            authMechanism="SCRAM-SHA-256",
            serverSelectionTimeoutMS=5000,
        )
        # The service's own connection string works, with the synchronous driver too.
        owner: MongoClient[dict[str, Any]] = MongoClient(uri)
        try:
            owner.library.secrets.insert_one({"hash": "argon2id$..."})
            with pytest.raises(OperationFailure, match="Authentication required"):
                stranger.library.secrets.find_one()
            with pytest.raises(OperationFailure, match="Authentication required"):
                stranger.library.secrets.insert_one({"planted": True})
            with pytest.raises(OperationFailure, match="Authentication required"):
                stranger.list_database_names()
            with pytest.raises(OperationFailure, match="Authentication failed"):
                guesser.library.secrets.find_one()
            assert owner.library.secrets.count_documents({}) == 1
        finally:
            for client in (stranger, guesser, owner):
                client.close()
    finally:
        server.stop()


def test_the_password_is_random_per_process_and_never_logged(
    tmp_path: Path, app_from: Callable[[Settings], Any], logged: pytest.LogCaptureFixture
) -> None:
    show = "from library_api.db import EmbeddedServer; print(EmbeddedServer(':memory:').password)"
    passwords = {
        subprocess.run(
            [sys.executable, "-c", show], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(passwords) == 2 and all(len(p) >= 32 for p in passwords)

    settings = Settings(
        _env_file=None,
        embedded_db_path=str(tmp_path / "data" / "library.sqlite3"),
        uploads_dir=tmp_path / "uploads",
        notify_interval_seconds=0,
        log_level="INFO",
    )
    with app_from(settings) as app:
        assert app.get("/ready").status_code == 200
    text = "\n".join(r.getMessage() for r in logged.records)
    assert "embedded database on mongodb://***@127.0.0.1:" in text
    assert EmbeddedServer(":memory:").password not in text
