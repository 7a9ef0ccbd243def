from starlette.testclient import TestClient

from tests.conftest import ADMIN_EMAIL

REGISTER = "/api/v1/auth/register"


def _register(client: TestClient, **fields: object):  # type: ignore[no-untyped-def]
    body = {"name": "Ada Lovelace", "email": "ada@example.com", "password": "analytical engine"}
    body.update(fields)
    return client.post(REGISTER, json=body)


def test_register_creates_a_member_without_secrets(client: TestClient) -> None:
    response = _register(client, email="  Ada@Example.COM ")
    assert response.status_code == 201
    body = response.json()
    # The contract's User: keep_history joined it with the privacy rules.
    assert set(body) == {"id", "name", "email", "role", "is_active", "keep_history", "created_at"}
    assert body["keep_history"] is False
    assert body["email"] == "ada@example.com"
    assert body["role"] == "member"
    assert body["is_active"] is True
    assert len(body["id"]) == 24
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]


def test_role_in_the_body_is_ignored(client: TestClient, raw_db) -> None:  # type: ignore[no-untyped-def]
    response = _register(client, role="admin", is_active=False)
    assert response.status_code == 201
    assert response.json()["role"] == "member"
    stored = raw_db.users.find_one({"email": "ada@example.com"})
    assert stored["role"] == "member"
    assert stored["is_active"] is True
    assert "password" not in stored
    assert stored["password_hash"].startswith("$argon2id$")


def test_duplicate_email_is_refused_case_insensitively(client: TestClient) -> None:
    assert _register(client).status_code == 201
    response = _register(client, email="ADA@example.com")
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"
    assert _register(client, email=ADMIN_EMAIL.upper()).json()["code"] == "email_taken"


def test_password_length_bounds(client: TestClient) -> None:
    too_short = _register(client, password="x" * 7)
    assert too_short.status_code == 422
    assert too_short.json()["code"] == "validation_error"
    assert isinstance(too_short.json()["detail"], list)
    assert _register(client, password="y" * 129).status_code == 422
    assert _register(client, password="z" * 8 + "a", email="eight@example.com").status_code == 201
    assert _register(client, password="q" * 128, email="long@example.com").status_code == 201


def test_common_passwords_are_refused(client: TestClient) -> None:
    for common in ("password", "12345678", "baseball", "Football1"):
        response = _register(client, password=common)
        assert response.status_code == 422, common
        assert response.json()["code"] == "weak_password"


def test_invalid_email_and_blank_name(client: TestClient) -> None:
    assert _register(client, email="not-an-email").status_code == 422
    assert _register(client, name="   ").status_code == 422
    assert _register(client, name=None).status_code == 422
