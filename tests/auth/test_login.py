from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import PASSWORD, Account

LOGIN = "/api/v1/auth/login"


def _login(client: TestClient, email: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(LOGIN, data={"username": email, "password": password})


def test_login_returns_a_token_pair_not_to_be_cached(client: TestClient, member: Account) -> None:
    response = _login(client, f"  {member.email.upper()} ", PASSWORD)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] != body["refresh_token"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["id"] == member.id


def test_wrong_password_and_unknown_email_look_the_same(
    client: TestClient, member: Account
) -> None:
    wrong = _login(client, member.email, "not the password")
    unknown = _login(client, "nobody@example.com", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json() == {
            "detail": "Incorrect email or password",
            "code": "invalid_credentials",
            # RFC 6749 section 5.2, for OAuth2 clients such as Swagger's Authorize dialog.
            "error": "invalid_grant",
            "error_description": "Incorrect email or password",
        }
        assert response.headers["www-authenticate"] == "Bearer"


def test_deactivated_account_gets_403_only_with_the_right_password(
    client: TestClient, admin: Account, member: Account
) -> None:
    client.patch(f"/api/v1/users/{member.id}", json={"is_active": False}, headers=admin.headers)
    assert _login(client, member.email, "wrong password").status_code == 401
    response = _login(client, member.email, PASSWORD)
    assert response.status_code == 403
    assert response.json()["code"] == "account_disabled"


def test_lockout_after_repeated_failures_even_with_the_right_password(
    client: TestClient, member: Account
) -> None:
    for _ in range(5):
        assert _login(client, member.email, "wrong password").status_code == 401
    locked = _login(client, member.email, PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert locked.json()["error"] == "invalid_grant"
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 900
    clock.advance(timedelta(seconds=retry_after + 1))
    assert _login(client, member.email, PASSWORD).status_code == 200


def test_lockout_counts_unknown_emails_too(client: TestClient) -> None:
    for _ in range(5):
        assert _login(client, "Ghost@example.com", "whatever it is").status_code == 401
    response = _login(client, "ghost@example.com", "whatever it is")
    assert response.status_code == 429
    assert "retry-after" in response.headers


def test_lockout_only_counts_failures_inside_the_window(
    client: TestClient, member: Account
) -> None:
    for _ in range(4):
        _login(client, member.email, "wrong password")
    clock.advance(timedelta(seconds=901))
    for _ in range(4):
        assert _login(client, member.email, "wrong password").status_code == 401
    assert _login(client, member.email, PASSWORD).status_code == 200


def test_success_clears_the_failures(client: TestClient, member: Account) -> None:
    for _ in range(4):
        _login(client, member.email, "wrong password")
    assert _login(client, member.email, PASSWORD).status_code == 200
    for _ in range(4):
        assert _login(client, member.email, "wrong password").status_code == 401
    assert _login(client, member.email, PASSWORD).status_code == 200


def test_lockout_settings_are_honoured(app_with, make_account) -> None:  # type: ignore[no-untyped-def]
    account = make_account("member")
    with app_with(login_max_failures=2, login_lockout_seconds=60) as other:
        for _ in range(2):
            assert _login(other, account.email, "wrong password").status_code == 401
        response = _login(other, account.email, PASSWORD)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) <= 60


def test_hash_is_upgraded_when_parameters_change(
    app_with,
    member: Account,
    raw_db,  # type: ignore[no-untyped-def]
) -> None:
    before = raw_db.users.find_one({"email": member.email})["password_hash"]
    with app_with(argon2_time_cost=2) as other:
        assert _login(other, member.email, PASSWORD).status_code == 200
    after = raw_db.users.find_one({"email": member.email})["password_hash"]
    assert after != before
    assert ",t=2," in after


def test_login_needs_form_fields(client: TestClient) -> None:
    response = client.post(LOGIN, data={"username": "a@example.com"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_parallel_guesses_cannot_pass_the_lockout(client: TestClient, member: Account) -> None:
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(
            pool.map(lambda _: _login(client, member.email, "wrong guess").status_code, range(12))
        )
    assert statuses.count(401) <= 5
    assert statuses.count(429) >= 7
    assert set(statuses) <= {401, 429}
    # A burst locks the email whatever mix of checks and refusals it made (issue: the
    # lock-out holds afterwards), even for the right password.
    assert _login(client, member.email, PASSWORD).status_code == 429


def test_a_password_with_spaces_is_kept_as_typed(client: TestClient) -> None:
    body = {"name": "Spacey", "email": "spacey@example.com", "password": "  spaced password  "}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    assert _login(client, "spacey@example.com", "  spaced password  ").status_code == 200
    assert _login(client, "spacey@example.com", "spaced password").status_code == 401


def test_retry_after_counts_from_the_try_that_keeps_the_lock(
    client: TestClient, member: Account, raw_db: Any
) -> None:
    """More tries than the limit can be recorded (a parallel burst keeps the first of them):
    the lock lasts until fewer than the limit remain, not until the oldest leaves."""
    assert _login(client, member.email, "wrong password").status_code == 401
    clock.advance(timedelta(seconds=500))
    now = clock.now()
    raw_db.login_attempts.insert_many(
        [
            {"email": member.email, "at": now, "expires_at": now + timedelta(seconds=900)}
            for _ in range(6)
        ]
    )
    locked = _login(client, member.email, PASSWORD)
    assert locked.status_code == 429
    retry_after = int(locked.headers["retry-after"])
    assert 890 <= retry_after <= 900, retry_after
    clock.advance(timedelta(seconds=401))
    assert _login(client, member.email, PASSWORD).status_code == 429
    clock.advance(timedelta(seconds=retry_after))
    assert _login(client, member.email, PASSWORD).status_code == 200
