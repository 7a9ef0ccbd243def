"""`library-api seed-demo`, run through the real command line and driver, twice."""

import csv
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from stdnum import isbn

from library_api.books import demo
from library_api.cli import main
from library_api.config import Settings, get_settings
from tests.conftest import login

DEMO_CSV = Path(demo.__file__).with_name("demo_books.csv")


@pytest.fixture
def seed_demo(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[], str]]:
    """Runs `library-api seed-demo` on the test database and returns what it printed."""
    assert settings.mongodb_url and settings.jwt_secret
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("MONGODB_URL", settings.mongodb_url)
    monkeypatch.setenv("MONGODB_DB", settings.mongodb_db)
    monkeypatch.setenv("JWT_SECRET", settings.jwt_secret)
    monkeypatch.setenv("ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    get_settings.cache_clear()
    database = client.app.state.runtime.database  # type: ignore[attr-defined]

    def run() -> str:
        try:
            main(["seed-demo"])
        finally:
            # The command bound Beanie's (process-wide) documents to its own, now closed,
            # client: point them back at the app's.
            client.portal.call(partial(database.bind, indexes=False))
        return capsys.readouterr().out

    yield run
    get_settings.cache_clear()


def test_demo_catalogue_is_valid() -> None:
    with DEMO_CSV.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert 30 <= len(rows) <= 60
    assert all(isbn.is_valid(r["isbn"]) and len(r["isbn"]) == 13 for r in rows)
    assert len({r["isbn"] for r in rows}) == len(rows)
    assert all(r["title"] and r["authors"] and r["genres"] for r in rows)
    assert sum(int(r["total_copies"]) > 1 for r in rows) > len(rows) // 2


def test_seed_demo_is_idempotent(
    client: TestClient, raw_db: Any, seed_demo: Callable[[], str]
) -> None:
    with DEMO_CSV.open(encoding="utf-8") as file:
        expected = len(list(csv.DictReader(file)))

    first = seed_demo()
    assert f"{expected} books added, 0 already there" in first
    passwords = dict(re.findall(r"(\S+@\S+)\s+password: (\S+)", first))
    assert set(passwords) == {"demo.librarian@example.com", "demo.member@example.com"}

    second = seed_demo()
    assert f"0 books added, {expected} already there" in second
    assert "password:" not in second
    assert raw_db.books.count_documents({}) == expected
    for email in passwords:
        assert raw_db.users.count_documents({"email": email}) == 1

    librarian = login(client, "demo.librarian@example.com", passwords["demo.librarian@example.com"])
    member = login(client, "demo.member@example.com", passwords["demo.member@example.com"])
    as_librarian = {"Authorization": f"Bearer {librarian['access_token']}"}
    as_member = {"Authorization": f"Bearer {member['access_token']}"}
    assert client.get("/api/v1/users/me", headers=as_librarian).json()["role"] == "librarian"
    assert client.get("/api/v1/users/me", headers=as_member).json()["role"] == "member"

    found = client.get("/api/v1/books", params={"q": "austen"}, headers=as_member).json()
    assert found["total"] == 3
    assert all(b["status"] == "available" for b in found["items"])
    bronte = client.get("/api/v1/books", params={"author": "bronte"}, headers=as_member).json()
    assert [b["title"] for b in bronte["items"]] == ["Jane Eyre", "Wuthering Heights"]
