from concurrent.futures import ThreadPoolExecutor

from starlette.testclient import TestClient

from tests.conftest import ADMIN_EMAIL, PASSWORD, Account, login

USERS = "/api/v1/users"


def test_admin_creates_users_with_roles(client: TestClient, admin: Account) -> None:
    response = client.post(
        USERS,
        json={"name": "Lib", "email": "Lib@Example.com", "password": PASSWORD, "role": "librarian"},
        headers=admin.headers,
    )
    assert response.status_code == 201
    assert response.json()["role"] == "librarian"
    assert response.json()["email"] == "lib@example.com"
    duplicate = client.post(
        USERS,
        json={"name": "Lib", "email": "lib@example.com", "password": PASSWORD},
        headers=admin.headers,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "email_taken"


def test_only_admins_create_users(client: TestClient, librarian: Account, member: Account) -> None:
    body = {"name": "X", "email": "x@example.com", "password": PASSWORD, "role": "admin"}
    for account in (librarian, member):
        response = client.post(USERS, json=body, headers=account.headers)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert client.post(USERS, json=body).status_code == 401


def test_librarians_list_and_search_users(
    client: TestClient,
    librarian: Account,
    make_account,  # type: ignore[no-untyped-def]
) -> None:
    make_account("member", name="Zora Neale Hurston", email="zora@example.org")
    make_account("member", name="Ursula", email="ursula.leguin@example.net")
    everyone = client.get(USERS, headers=librarian.headers).json()
    assert everyone["total"] == 4  # the admin, the librarian and the two members
    by_name = client.get(USERS, params={"q": "NEALE"}, headers=librarian.headers).json()
    assert [u["email"] for u in by_name["items"]] == ["zora@example.org"]
    by_email = client.get(USERS, params={"q": "leguin@"}, headers=librarian.headers).json()
    assert [u["name"] for u in by_email["items"]] == ["Ursula"]
    members = client.get(USERS, params={"role": "member"}, headers=librarian.headers).json()
    assert {u["role"] for u in members["items"]} == {"member"}
    assert members["total"] == 2
    both = client.get(USERS, params={"role": "member", "q": "zora"}, headers=librarian.headers)
    assert both.json()["total"] == 1
    regex = client.get(USERS, params={"q": ".*"}, headers=librarian.headers).json()
    assert regex["total"] == 0
    paged = client.get(USERS, params={"page": 2, "page_size": 2}, headers=librarian.headers).json()
    assert paged["page"] == 2 and paged["page_size"] == 2 and len(paged["items"]) == 2
    past = client.get(USERS, params={"page": 9}, headers=librarian.headers).json()
    assert past["items"] == [] and past["total"] == everyone["total"]


def test_members_cannot_list_users(client: TestClient, member: Account) -> None:
    assert client.get(USERS, headers=member.headers).status_code == 403
    assert client.get(f"{USERS}/{member.id}", headers=member.headers).status_code == 403


def test_pagination_bounds(client: TestClient, librarian: Account) -> None:
    for params in ({"page": 0}, {"page_size": 0}, {"page_size": 101}, {"page": "x"}):
        response = client.get(USERS, params=params, headers=librarian.headers)
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"


def test_get_user(client: TestClient, librarian: Account, member: Account) -> None:
    response = client.get(f"{USERS}/{member.id}", headers=librarian.headers)
    assert response.status_code == 200
    assert response.json()["email"] == member.email
    for missing in ("0" * 24, "not-an-id", "abc"):
        response = client.get(f"{USERS}/{missing}", headers=librarian.headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_admin_changes_role_and_name(client: TestClient, admin: Account, member: Account) -> None:
    response = client.patch(
        f"{USERS}/{member.id}",
        json={"role": "librarian", "name": "Promoted"},
        headers=admin.headers,
    )
    assert response.status_code == 200
    assert response.json()["role"] == "librarian"
    assert response.json()["name"] == "Promoted"
    assert client.get(USERS, headers=member.headers).status_code == 200


def test_librarian_cannot_administer(
    client: TestClient, librarian: Account, member: Account
) -> None:
    response = client.patch(
        f"{USERS}/{member.id}", json={"role": "admin"}, headers=librarian.headers
    )
    assert response.status_code == 403


def test_deactivate_then_reactivate(client: TestClient, admin: Account, member: Account) -> None:
    off = client.patch(f"{USERS}/{member.id}", json={"is_active": False}, headers=admin.headers)
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert client.get("/api/v1/users/me", headers=member.headers).status_code == 401
    on = client.patch(f"{USERS}/{member.id}", json={"is_active": True}, headers=admin.headers)
    assert on.json()["is_active"] is True
    # Sessions revoked by the deactivation stay revoked; a new login works.
    assert client.get("/api/v1/users/me", headers=member.headers).status_code == 401
    login(client, member.email, PASSWORD)


def test_last_admin_cannot_demote_or_deactivate_itself(client: TestClient, admin: Account) -> None:
    for change in ({"role": "librarian"}, {"is_active": False}):
        response = client.patch(f"{USERS}/{admin.id}", json=change, headers=admin.headers)
        assert response.status_code == 409
        assert response.json()["code"] == "last_admin"
    assert client.get("/api/v1/users/me", headers=admin.headers).json()["role"] == "admin"


def test_an_admin_with_a_peer_can_step_down(
    client: TestClient,
    admin: Account,
    make_account,  # type: ignore[no-untyped-def]
) -> None:
    make_account("admin")
    response = client.patch(f"{USERS}/{admin.id}", json={"role": "member"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["role"] == "member"


def test_bootstrap_admin_exists_once(client: TestClient, librarian: Account) -> None:
    admins = client.get(USERS, params={"role": "admin"}, headers=librarian.headers).json()
    assert [u["email"] for u in admins["items"]] == [ADMIN_EMAIL]


def test_two_admins_stepping_down_at_once_leave_one(
    client: TestClient,
    admin: Account,
    make_account,  # type: ignore[no-untyped-def]
) -> None:
    peer = make_account("admin")
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(
            pool.map(
                lambda a: client.patch(
                    f"{USERS}/{a.id}", json={"role": "member", "name": "Gone"}, headers=a.headers
                ),
                [admin, peer],
            )
        )
    assert 409 in [r.status_code for r in responses]
    admins = client.get(
        USERS,
        params={"role": "admin"},
        headers=admin.headers if responses[0].status_code == 409 else peer.headers,
    ).json()
    assert admins["total"] >= 1
    refused = [a for a, r in zip([admin, peer], responses, strict=True) if r.status_code == 409]
    for account in refused:
        me = client.get("/api/v1/users/me", headers=account.headers).json()
        assert me["role"] == "admin"
        assert me["name"] != "Gone"


def test_a_page_far_past_the_end_is_empty(client: TestClient, librarian: Account) -> None:
    for page in (2_000_000, 10**15):
        response = client.get(
            USERS, params={"page": page, "page_size": 100}, headers=librarian.headers
        )
        assert response.status_code == 200
        body = response.json()
        assert body["items"] == [] and body["page"] == page and body["total"] >= 2
