"""Passwords that are the account's own email, blank, or carry control characters."""

from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api import cli
from tests.conftest import PASSWORD, Account, login

EMAIL = "Reader.One@Example.com"  # stored as reader.one@example.com

# Each 8-128 characters, so only the strength rule can refuse it.
OWN_EMAIL = ["reader.one@example.com", "READER.ONE@EXAMPLE.COM", "Reader.One", "reader.one"]
BLANK = [" " * 8, "\u3000" * 8, "\u00a0 " * 5]
CONTROL = [
    "good pass\x00word",
    "line one\nline two",
    "tab\tseparated",
    "bell\x07ringing",
    "\x7f" * 9,
]
BAD = OWN_EMAIL + BLANK + CONTROL


def _weak(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "weak_password"
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("password", BAD)
def test_register_refuses(client: TestClient, raw_db: Any, password: str) -> None:
    body = {"name": "Reader", "email": EMAIL, "password": password}
    _weak(client.post("/api/v1/auth/register", json=body))
    assert raw_db.users.count_documents({"email": EMAIL.lower()}) == 0


@pytest.mark.parametrize("password", BAD)
def test_admin_create_refuses(
    client: TestClient, admin: Account, raw_db: Any, password: str
) -> None:
    body = {"name": "Reader", "email": EMAIL, "password": password, "role": "librarian"}
    _weak(client.post("/api/v1/users", json=body, headers=admin.headers))
    assert raw_db.users.count_documents({"email": EMAIL.lower()}) == 0


def test_password_change_refuses_and_keeps_the_old_one(client: TestClient, member: Account) -> None:
    local = member.email.partition("@")[0]
    for new in (member.email, member.email.upper(), local.title(), *BLANK, *CONTROL):
        body = {"current_password": PASSWORD, "new_password": new}
        _weak(client.post("/api/v1/users/me/password", json=body, headers=member.headers))
    # Nothing changed: the old password still logs in, this session goes on.
    login(client, member.email, PASSWORD)
    assert client.get("/api/v1/users/me", headers=member.headers).status_code == 200


def test_near_misses_are_fine(client: TestClient) -> None:
    for i, password in enumerate(
        ("reader.one is my name", "  spaced out words  ", "pässwörter sind lang", "reader.one!")
    ):
        body = {"name": "Reader", "email": f"{i}.{EMAIL}", "password": password}
        response = client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 201, (password, response.text)
        login(client, f"{i}.{EMAIL}", password)


@pytest.mark.parametrize(
    "password", ["boss@example.com", "BOSS@EXAMPLE.COM", "Boss" * 2 + "\n", " " * 12]
)
def test_bootstrap_and_create_admin_refuse(
    capsys: pytest.CaptureFixture[str], password: str
) -> None:
    # `serve` (ADMIN_EMAIL/ADMIN_PASSWORD) and `create-admin` both check the admin here.
    with pytest.raises(SystemExit) as exit_:
        cli._check_admin("Administrator", "Boss@Example.com", password)
    assert exit_.value.code == 1
    assert "invalid admin account" in capsys.readouterr().err


def test_bootstrap_and_create_admin_accept_a_good_password() -> None:
    assert cli._check_admin("Administrator", " Boss@Example.com ", "boss is in charge") == (
        "boss@example.com",
        "boss is in charge",
    )
