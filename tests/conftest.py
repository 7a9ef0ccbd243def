"""Fixtures: one database server and one running app per test session, emptied between tests.

`TEST_MONGODB_URL=mongodb://…` runs the same suite against a real MongoDB; otherwise an
embedded mongoeco server starts once for the session.
"""

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from starlette.testclient import TestClient

from library_api import clock
from library_api.config import Settings
from library_api.db import EmbeddedServer
from library_api.main import create_app

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-pass-for-tests"
PASSWORD = "a fine long passphrase"


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    url = os.environ.get("TEST_MONGODB_URL")
    if url:
        yield url
        return
    server = EmbeddedServer(":memory:")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def make_settings(
    mongodb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    db_name = f"library_test_{uuid.uuid4().hex[:8]}"
    uploads = tmp_path_factory.mktemp("uploads")

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mongodb_url": mongodb_url,
            "mongodb_db": db_name,
            "jwt_secret": "test-secret-" + "x" * 40,
            "uploads_dir": uploads,
            "argon2_memory_kib": 64,
            "argon2_time_cost": 1,
            "notify_interval_seconds": 0,
            "consistency_interval_seconds": 0,
            "admin_email": ADMIN_EMAIL,
            "admin_password": ADMIN_PASSWORD,
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture(scope="session")
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def _app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def client(_app_client: TestClient) -> TestClient:
    _app_client.headers.clear()
    _app_client.cookies.clear()
    return _app_client


@pytest.fixture(scope="session")
def raw_db(mongodb_url: str, settings: Settings) -> Iterator[Any]:
    """A plain synchronous driver on the test database, for set-up and inspection."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, tz_aware=True)
    yield mongo[settings.mongodb_db]
    mongo.drop_database(settings.mongodb_db)
    mongo.close()


@pytest.fixture(scope="session")
def _bootstrap_admin(_app_client: TestClient, raw_db: Any) -> dict[str, Any]:
    """The admin the app created at start-up, restored as it was after every test."""
    stored: dict[str, Any] = raw_db.users.find_one({"email": ADMIN_EMAIL})
    return stored


@pytest.fixture(autouse=True)
def _clean(raw_db: Any, settings: Settings, _bootstrap_admin: dict[str, Any]) -> Iterator[None]:
    yield
    clock.reset()
    for name in raw_db.list_collection_names():
        if not name.startswith("system."):
            raw_db[name].delete_many({})
    raw_db.users.insert_one(_bootstrap_admin)
    uploads = Path(settings.uploads_dir)
    for entry in uploads.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def running_app(
    settings: Settings, main: TestClient, prepare: Callable[[Any], None] | None = None
) -> Iterator[TestClient]:
    """Another app with its own settings; the main app is re-bound after."""
    app = create_app(settings)
    if prepare is not None:
        prepare(app)
    with TestClient(app, raise_server_exceptions=prepare is None) as other:
        yield other
    database = main.app.state.runtime.database  # type: ignore[attr-defined]
    main.portal.call(partial(database.bind, indexes=False))  # type: ignore[union-attr]


@pytest.fixture
def app_with(make_settings: Callable[..., Settings], _app_client: TestClient) -> Callable[..., Any]:
    def start(prepare: Callable[[Any], None] | None = None, **overrides: Any) -> Any:
        return running_app(make_settings(**overrides), _app_client, prepare)

    return start


@pytest.fixture
def app_from(_app_client: TestClient) -> Callable[[Settings], Any]:
    """Like `app_with`, from settings built by the test itself (another database, say)."""

    def start(settings: Settings) -> Any:
        return running_app(settings, _app_client)

    return start


@dataclass
class Account:
    id: str
    email: str
    password: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def login(client: TestClient, email: str, password: str) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _account(client: TestClient, email: str, password: str) -> Account:
    tokens = login(client, email, password)
    me = client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    return Account(
        id=me["id"],
        email=email,
        password=password,
        role=me["role"],
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


@pytest.fixture
def admin(client: TestClient) -> Account:
    return _account(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def make_account(client: TestClient, admin: Account) -> Callable[..., Account]:
    """Creates a user with a role (through the admin API) and logs it in for real."""

    def make(role: str = "member", name: str | None = None, email: str | None = None) -> Account:
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        response = client.post(
            "/api/v1/users",
            json={"name": name or role.title(), "email": email, "password": PASSWORD, "role": role},
            headers=admin.headers,
        )
        assert response.status_code == 201, response.text
        return _account(client, email, PASSWORD)

    return make


@pytest.fixture
def librarian(make_account: Callable[..., Account]) -> Account:
    return make_account("librarian")


@pytest.fixture
def member(make_account: Callable[..., Account]) -> Account:
    return make_account("member")


@pytest.fixture
def other_member(make_account: Callable[..., Account]) -> Account:
    return make_account("member")
