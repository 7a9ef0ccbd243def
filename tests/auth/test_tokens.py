import base64
import json
import time
from datetime import timedelta

from jose import jwt
from starlette.testclient import TestClient

from library_api import clock
from library_api.config import Settings
from tests.conftest import PASSWORD, Account, login

ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_401(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] in {"not_authenticated", "invalid_token"}


def test_no_token(client: TestClient) -> None:
    _assert_401(client.get(ME))
    _assert_401(client.get(ME, headers={"Authorization": "Basic abc"}))


def test_expired_access_token(client: TestClient, member: Account) -> None:
    assert client.get(ME, headers=member.headers).status_code == 200
    clock.advance(timedelta(minutes=15, seconds=1))
    _assert_401(client.get(ME, headers=member.headers))


def test_tampered_token(client: TestClient, member: Account) -> None:
    header, payload, signature = member.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "0" * 24
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _assert_401(client.get(ME, headers=_bearer(f"{header}.{forged}.{signature}")))
    _assert_401(client.get(ME, headers=_bearer(f"{header}.{payload}.{signature[:-4]}AAAA")))


def test_alg_none_is_refused(client: TestClient, member: Account) -> None:
    _, payload, _ = member.access_token.split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    _assert_401(client.get(ME, headers=_bearer(f"{none_header}.{payload}.")))


def test_token_without_exp_is_refused(
    client: TestClient, member: Account, settings: Settings
) -> None:
    claims = jwt.get_unverified_claims(member.access_token)
    del claims["exp"]
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    _assert_401(client.get(ME, headers=_bearer(token)))


def test_token_signed_with_another_key(client: TestClient, member: Account) -> None:
    claims = jwt.get_unverified_claims(member.access_token)
    token = jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")
    _assert_401(client.get(ME, headers=_bearer(token)))


def test_refresh_token_is_not_a_bearer_token(client: TestClient, member: Account) -> None:
    _assert_401(client.get(ME, headers=_bearer(member.refresh_token)))


def test_access_token_is_not_a_refresh_token(client: TestClient, member: Account) -> None:
    _assert_401(client.post(REFRESH, json={"refresh_token": member.access_token}))


def test_refresh_rotates_the_pair(client: TestClient, member: Account) -> None:
    response = client.post(REFRESH, json={"refresh_token": member.refresh_token})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    pair = response.json()
    assert pair["refresh_token"] != member.refresh_token
    assert client.get(ME, headers=_bearer(pair["access_token"])).status_code == 200
    again = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_session(
    client: TestClient, member: Account
) -> None:
    pair = client.post(REFRESH, json={"refresh_token": member.refresh_token}).json()
    _assert_401(client.post(REFRESH, json={"refresh_token": member.refresh_token}))
    # The thief's replay ended the session for the legitimate holder too.
    _assert_401(client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}))
    _assert_401(client.get(ME, headers=_bearer(pair["access_token"])))
    _assert_401(client.get(ME, headers=member.headers))


def test_unknown_refresh_token(client: TestClient) -> None:
    _assert_401(client.post(REFRESH, json={"refresh_token": "made-up"}))


def test_session_life_is_fixed_at_login(client: TestClient, member: Account) -> None:
    token = member.refresh_token
    for _ in range(2):
        clock.advance(timedelta(days=6))
        token = client.post(REFRESH, json={"refresh_token": token}).json()["refresh_token"]
    clock.advance(timedelta(days=2, minutes=1))
    _assert_401(client.post(REFRESH, json={"refresh_token": token}))


def test_logout_ends_access_and_refresh(client: TestClient, member: Account) -> None:
    response = client.post("/api/v1/auth/logout", headers=member.headers)
    assert response.status_code == 204
    _assert_401(client.get(ME, headers=member.headers))
    _assert_401(client.post(REFRESH, json={"refresh_token": member.refresh_token}))


def test_sessions_are_listed_with_the_current_one(client: TestClient, member: Account) -> None:
    second = login(client, member.email, PASSWORD)
    response = client.get("/api/v1/auth/sessions", headers=member.headers)
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 2
    assert [s["current"] for s in page["items"]].count(True) == 1
    item = page["items"][0]
    assert set(item) == {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}
    other_id = next(s["id"] for s in page["items"] if not s["current"])
    assert (
        client.delete(f"/api/v1/auth/sessions/{other_id}", headers=member.headers).status_code
        == 204
    )
    _assert_401(client.get(ME, headers=_bearer(second["access_token"])))
    assert client.get(ME, headers=member.headers).status_code == 200
    after = client.get("/api/v1/auth/sessions", headers=member.headers).json()
    assert after["total"] == 1


def test_another_users_session_is_not_found(
    client: TestClient, member: Account, other_member: Account
) -> None:
    theirs = client.get("/api/v1/auth/sessions", headers=other_member.headers).json()["items"][0]
    response = client.delete(f"/api/v1/auth/sessions/{theirs['id']}", headers=member.headers)
    assert response.status_code == 404
    assert client.get(ME, headers=other_member.headers).status_code == 200
    assert (
        client.delete("/api/v1/auth/sessions/not-an-id", headers=member.headers).status_code == 404
    )


def test_demotion_takes_effect_at_once(
    client: TestClient,
    admin: Account,
    make_account,  # type: ignore[no-untyped-def]
) -> None:
    librarian = make_account("librarian")
    assert client.get("/api/v1/users", headers=librarian.headers).status_code == 200
    client.patch(f"/api/v1/users/{librarian.id}", json={"role": "member"}, headers=admin.headers)
    response = client.get("/api/v1/users", headers=librarian.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_deactivation_ends_sessions_at_once(
    client: TestClient, admin: Account, member: Account
) -> None:
    client.patch(f"/api/v1/users/{member.id}", json={"is_active": False}, headers=admin.headers)
    _assert_401(client.get(ME, headers=member.headers))
    _assert_401(client.post(REFRESH, json={"refresh_token": member.refresh_token}))


def test_iat_and_jti_are_present(member: Account) -> None:
    claims = jwt.get_unverified_claims(member.access_token)
    assert {"sub", "sid", "iat", "exp", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert abs(claims["iat"] - time.time()) < 60
