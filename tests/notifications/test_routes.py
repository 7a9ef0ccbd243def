"""GET /notifications/me, POST /notifications/{id}/read, POST /admin/notifications/run."""

from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account
from tests.notifications.conftest import API, Desk

DAY = timedelta(days=1)


@pytest.fixture
def four(desk: Desk, member: Account) -> list[dict[str, Any]]:
    """Two due_soon, then (two days later) two overdue notifications of the member."""
    for title in ("Alpha", "Beta"):
        desk.borrow(member, desk.book(title))
    clock.advance(timedelta(days=13, hours=1))
    assert desk.scan() == 2
    clock.advance(2 * DAY)
    assert desk.scan() == 2
    return desk.notifications(member)


def test_list_is_newest_first_and_paginated(
    desk: Desk, client: TestClient, member: Account, four: list[dict[str, Any]]
) -> None:
    assert [n["kind"] for n in four] == ["overdue", "overdue", "due_soon", "due_soon"]
    stamps = [n["created_at"] for n in four]
    assert stamps == sorted(stamps, reverse=True)
    assert set(four[0]) == {
        "id",
        "kind",
        "loan_id",
        "reservation_id",
        "message",
        "created_at",
        "read_at",
    }
    page = client.get(
        f"{API}/notifications/me",
        params={"page": 2, "page_size": 3},
        headers=desk.headers(member),
    ).json()
    assert (page["total"], page["page"], page["page_size"]) == (4, 2, 3)
    assert [n["id"] for n in page["items"]] == [four[3]["id"]]


def test_mark_read_once_and_filter(
    desk: Desk, client: TestClient, member: Account, four: list[dict[str, Any]]
) -> None:
    target = four[1]["id"]
    first = client.post(f"{API}/notifications/{target}/read", headers=desk.headers(member))
    assert first.status_code == 200, first.text
    read = first.json()
    assert read["id"] == target
    assert read["read_at"] is not None
    assert {k: v for k, v in read.items() if k != "read_at"} == {
        k: v for k, v in four[1].items() if k != "read_at"
    }

    clock.advance(timedelta(hours=1))
    again = client.post(f"{API}/notifications/{target}/read", headers=desk.headers(member))
    assert again.status_code == 200
    assert again.json()["read_at"] == read["read_at"]

    unread = desk.notifications(member, unread="true")
    assert [n["id"] for n in unread] == [four[0]["id"], four[2]["id"], four[3]["id"]]
    assert all(n["read_at"] is None for n in unread)
    assert [n["id"] for n in desk.notifications(member, unread="false")] == [target]
    assert len(desk.notifications(member)) == 4


def test_another_members_notification_is_not_found(
    desk: Desk,
    client: TestClient,
    member: Account,
    other_member: Account,
    librarian: Account,
    four: list[dict[str, Any]],
) -> None:
    target = four[0]["id"]
    for account in (other_member, librarian):
        response = client.post(f"{API}/notifications/{target}/read", headers=desk.headers(account))
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert desk.notifications(member)[0]["read_at"] is None
    assert desk.notifications(other_member) == []


@pytest.mark.parametrize("bad", ["nope", "0" * 24, "6b0837f1f5c2e1a9d4c3b2a1"])
def test_unknown_or_malformed_id_is_not_found(
    desk: Desk, client: TestClient, member: Account, bad: str
) -> None:
    response = client.post(f"{API}/notifications/{bad}/read", headers=desk.headers(member))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_only_an_admin_runs_the_scan(
    desk: Desk, client: TestClient, member: Account, librarian: Account
) -> None:
    for account in (member, librarian):
        response = client.post(f"{API}/admin/notifications/run", headers=desk.headers(account))
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert client.post(f"{API}/admin/notifications/run").status_code == 401
    response = client.post(f"{API}/admin/notifications/run", headers=desk.headers(desk.admin))
    assert response.status_code == 200
    assert response.json() == {"created": 0}


def test_reading_needs_a_token(client: TestClient) -> None:
    assert client.get(f"{API}/notifications/me").status_code == 401
    assert client.post(f"{API}/notifications/{'0' * 24}/read").status_code == 401


def test_unread_must_be_a_boolean(desk: Desk, client: TestClient, member: Account) -> None:
    response = client.get(
        f"{API}/notifications/me", params={"unread": "maybe"}, headers=desk.headers(member)
    )
    assert response.status_code == 422
