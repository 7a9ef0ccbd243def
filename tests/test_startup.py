"""Configuration, start-up and the command line."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from library_api.config import ConfigError, Settings, resolve_jwt_secret
from tests.conftest import PASSWORD, login


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in Settings.model_fields or name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    s = _settings()
    assert (s.mongodb_url, s.mongodb_db, s.embedded_db_path) == (
        None,
        "library",
        "./data/library.sqlite3",
    )
    assert (s.access_token_minutes, s.refresh_token_days) == (15, 14)
    assert (s.max_cover_bytes, s.max_document_bytes) == (5_242_880, 104_857_600)
    assert (s.loan_days, s.max_active_loans, s.max_renewals, s.hold_pickup_days) == (14, 5, 2, 3)
    assert (s.login_max_failures, s.login_lockout_seconds) == (5, 900)
    assert s.notify_interval_seconds == 3600
    assert s.smtp_url is None and s.cors_origins == [] and s.storage_backend == "local"


def test_environment_variables_win_over_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "LOAN_DAYS=21\nMAX_RENEWALS=7\nCORS_ORIGINS=https://a.example,https://b.example\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOAN_DAYS", "10")
    s = Settings()
    assert s.loan_days == 10
    assert s.max_renewals == 7
    assert s.cors_origins == ["https://a.example", "https://b.example"]


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        _settings(jwt_secret="too-short")


def test_secret_is_required_with_a_real_mongodb() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        resolve_jwt_secret(_settings(mongodb_url="mongodb://db.example:27017"))


def test_embedded_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    s = _settings(embedded_db_path=str(tmp_path / "db" / "library.sqlite3"))
    first = resolve_jwt_secret(s)
    assert len(first.encode()) >= 32
    assert (tmp_path / "db" / "jwt-secret").read_text() == first
    assert resolve_jwt_secret(s) == first


def test_embedded_database_keeps_data_and_tokens_across_restarts(tmp_path: Path, app_from) -> None:  # type: ignore[no-untyped-def]
    values = {
        "embedded_db_path": str(tmp_path / "library.sqlite3"),
        "uploads_dir": tmp_path / "uploads",
        "argon2_memory_kib": 64,
        "argon2_time_cost": 1,
        "notify_interval_seconds": 0,
    }
    with app_from(_settings(**values)) as first:
        body = {"name": "Kept", "email": "kept@example.com", "password": PASSWORD}
        assert first.post("/api/v1/auth/register", json=body).status_code == 201
        tokens = login(first, "kept@example.com", PASSWORD)
    with app_from(_settings(**values)) as second:
        me = second.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 200
        assert me.json()["email"] == "kept@example.com"


def test_first_admin_is_created_only_when_none_exists(app_with, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
    with app_with(admin_email="second-admin@example.com", admin_password="another long secret"):
        pass
    response = client.get("/api/v1/users", params={"role": "admin"}, headers=admin.headers)
    assert response.json()["total"] == 1


def _cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "library_api.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_serve_with_unreachable_mongodb_fails_fast_in_one_line() -> None:
    started = time.monotonic()
    result = _cli(
        "serve",
        env={
            "MONGODB_URL": "mongodb://127.0.0.1:9/?connectTimeoutMS=500",
            "JWT_SECRET": "s" * 40,
            "MONGODB_TIMEOUT_SECONDS": "1",
        },
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 15
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach MongoDB" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_missing_secret_with_mongodb() -> None:
    result = _cli("serve", env={"MONGODB_URL": "mongodb://127.0.0.1:9", "JWT_SECRET": ""})
    assert result.returncode == 1
    assert "JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_create_admin_command(settings: Settings, client: TestClient) -> None:
    result = _cli(
        "create-admin",
        "--email",
        "Chief@Example.com",
        "--name",
        "Chief",
        env={
            "MONGODB_URL": str(settings.mongodb_url),
            "MONGODB_DB": settings.mongodb_db,
            "JWT_SECRET": str(settings.jwt_secret),
            "ADMIN_PASSWORD": "chief admin passphrase",
            "ARGON2_MEMORY_KIB": "64",
            "ARGON2_TIME_COST": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "chief@example.com" in result.stdout
    tokens = login(client, "chief@example.com", "chief admin passphrase")
    me = client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["role"] == "admin"


def test_generated_secret_file_is_private(tmp_path: Path) -> None:
    resolve_jwt_secret(_settings(embedded_db_path=str(tmp_path / "library.sqlite3")))
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600


def test_a_weak_admin_password_stops_start_up_in_one_line() -> None:
    result = _cli(
        "serve",
        env={
            "ADMIN_EMAIL": "boss@example.com",
            "ADMIN_PASSWORD": "password",
            "JWT_SECRET": "s" * 40,
            "EMBEDDED_DB_PATH": ":memory:",
        },
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid admin account" in lines[0], result.stderr


def test_create_admin_checks_the_account_like_the_api(settings: Settings) -> None:
    env = {
        "MONGODB_URL": str(settings.mongodb_url),
        "MONGODB_DB": settings.mongodb_db,
        "JWT_SECRET": str(settings.jwt_secret),
        "ADMIN_PASSWORD": "short",
    }
    result = _cli("create-admin", "--email", "not-an-email", "--name", "X", env=env)
    assert result.returncode == 1
    assert "invalid admin account" in result.stderr
    assert "Traceback" not in result.stderr
