from starlette.testclient import TestClient

from tests.conftest import PASSWORD, Account, login

ME = "/api/v1/users/me"


def test_me_has_the_user_and_loan_counts(client: TestClient, member: Account) -> None:
    response = client.get(ME, headers=member.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == member.id
    assert body["email"] == member.email
    assert body["role"] == "member"
    assert body["active_loans"] == 0
    assert body["overdue_loans"] == 0
    assert "password_hash" not in body


def test_rename_yourself(client: TestClient, member: Account) -> None:
    response = client.patch(ME, json={"name": "  Grace Hopper "}, headers=member.headers)
    assert response.status_code == 200
    assert response.json()["name"] == "Grace Hopper"
    assert client.get(ME, headers=member.headers).json()["name"] == "Grace Hopper"
    assert client.patch(ME, json={"name": ""}, headers=member.headers).status_code == 422


def test_cannot_change_own_role_or_email(client: TestClient, member: Account) -> None:
    response = client.patch(
        ME, json={"name": "Eve", "role": "admin", "email": "x@example.com"}, headers=member.headers
    )
    assert response.status_code == 200
    assert response.json()["role"] == "member"
    assert response.json()["email"] == member.email


def test_password_change(client: TestClient, member: Account) -> None:
    other_session = login(client, member.email, PASSWORD)
    wrong = client.post(
        f"{ME}/password",
        json={"current_password": "not it at all", "new_password": "a brand new phrase"},
        headers=member.headers,
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_password"
    weak = client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": "password1"},
        headers=member.headers,
    )
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"
    ok = client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": "a brand new phrase"},
        headers=member.headers,
    )
    assert ok.status_code == 204
    # This session goes on; every other one is over.
    assert client.get(ME, headers=member.headers).status_code == 200
    other = {"Authorization": f"Bearer {other_session['access_token']}"}
    assert client.get(ME, headers=other).status_code == 401
    old = client.post("/api/v1/auth/login", data={"username": member.email, "password": PASSWORD})
    assert old.status_code == 401
    login(client, member.email, "a brand new phrase")


def test_guessing_the_current_password_is_locked_out(client: TestClient, member: Account) -> None:
    body = {"current_password": "a wrong guess", "new_password": "a brand new phrase"}
    for _ in range(5):
        assert client.post(f"{ME}/password", json=body, headers=member.headers).status_code == 400
    body["current_password"] = PASSWORD
    locked = client.post(f"{ME}/password", json=body, headers=member.headers)
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert "retry-after" in locked.headers
