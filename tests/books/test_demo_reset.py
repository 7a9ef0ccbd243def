"""`library-api seed-demo --reset-passwords`: a lost demo password can be replaced."""

import re
from functools import partial
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from library_api.cli import main
from library_api.config import Settings, get_settings
from tests.conftest import login


def test_reset_passwords_prints_new_ones_and_ends_old_sessions(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert settings.mongodb_url and settings.jwt_secret
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("MONGODB_URL", settings.mongodb_url)
    monkeypatch.setenv("MONGODB_DB", settings.mongodb_db)
    monkeypatch.setenv("JWT_SECRET", settings.jwt_secret)
    monkeypatch.setenv("ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    get_settings.cache_clear()
    database = client.app.state.runtime.database  # type: ignore[attr-defined]

    def seed(*args: str) -> dict[str, str]:
        try:
            main(["seed-demo", *args])
        finally:
            client.portal.call(partial(database.bind, indexes=False))
        return dict(re.findall(r"(\S+@\S+)\s+(?:new )?password: (\S+)", capsys.readouterr().out))

    try:
        first = seed()
        email = "demo.member@example.com"
        old = login(client, email, first[email])
        assert seed() == {}, "without the flag, passwords are left alone"
        reset = seed("--reset-passwords")
        assert set(reset) == {"demo.librarian@example.com", email}
        assert reset[email] != first[email]
        stale = client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {old['access_token']}"}
        )
        assert stale.status_code == 401
        refused = client.post(
            "/api/v1/auth/login", data={"username": email, "password": first[email]}
        )
        assert refused.status_code == 401
        login(client, email, reset[email])
    finally:
        get_settings.cache_clear()
