"""GET /api/v1/stats, on data made through the API."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account
from tests.notifications.conftest import API, Desk

STATS = f"{API}/stats"


def _stats(client: TestClient, desk: Desk, account: Account) -> dict[str, Any]:
    response = client.get(STATS, headers=desk.headers(account))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_empty_library(client: TestClient, desk: Desk, librarian: Account) -> None:
    assert _stats(client, desk, librarian) == {
        "books": 0,
        "copies": 0,
        "members": 0,
        "active_loans": 0,
        "overdue_loans": 0,
        "waiting_reservations": 0,
        "top_borrowed": [],
    }


def test_figures_of_a_small_library(
    client: TestClient,
    desk: Desk,
    admin: Account,
    librarian: Account,
    member: Account,
    other_member: Account,
    make_account: Callable[..., Account],
) -> None:
    leaving = make_account("member")
    # Created before Alpha, so that a tie between them is broken by title, not by id.
    beta = desk.book("Beta", copies=2)
    alpha = desk.book("Alpha", copies=3)
    gamma = desk.book("Gamma", copies=1)
    desk.book("Delta", copies=1)

    desk.borrow(member, alpha)
    desk.borrow(member, beta)
    desk.borrow(other_member, gamma)
    desk.reserve(leaving, gamma)  # cancelled below, when its reader is deactivated
    desk.reserve(member, gamma)  # waiting: the only copy is out
    desk.give_back(member, beta)
    clock.advance(timedelta(days=10))
    desk.borrow(other_member, alpha)
    desk.borrow(member, beta)  # Beta's second loan
    clock.advance(timedelta(days=5))  # the first Alpha and Gamma loans are now overdue

    response = client.patch(
        f"{API}/users/{leaving.id}", json={"is_active": False}, headers=desk.headers(admin)
    )
    assert response.status_code == 200, response.text

    stats = _stats(client, desk, librarian)
    assert stats == {
        "books": 4,
        "copies": 7,
        "members": 2,
        "active_loans": 4,
        "overdue_loans": 2,
        "waiting_reservations": 1,
        "top_borrowed": [
            {"book_id": alpha["id"], "title": "Alpha", "loans": 2},
            {"book_id": beta["id"], "title": "Beta", "loans": 2},
            {"book_id": gamma["id"], "title": "Gamma", "loans": 1},
        ],
    }
    assert _stats(client, desk, admin) == stats


def test_top_borrowed_keeps_the_ten_most_borrowed(
    client: TestClient, desk: Desk, librarian: Account, member: Account
) -> None:
    books = [desk.book(f"Book {i:02d}") for i in range(12)]
    for book in books[:11]:
        desk.borrow(member, book)
        desk.give_back(member, book)
    favourite = books[7]
    desk.borrow(member, favourite)  # a second loan, still active

    top = _stats(client, desk, librarian)["top_borrowed"]
    assert len(top) == 10
    assert top[0] == {"book_id": favourite["id"], "title": "Book 07", "loans": 2}
    assert [entry["title"] for entry in top[1:]] == [
        f"Book {i:02d}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)
    ]
    assert all(entry["loans"] == 1 for entry in top[1:])


def test_a_deleted_book_leaves_the_ranking_but_not_the_catalogue_count(
    client: TestClient, desk: Desk, librarian: Account, member: Account
) -> None:
    kept, removed = desk.book("Kept"), desk.book("Removed", copies=2)
    for book in (kept, removed):
        desk.borrow(member, book)
        desk.give_back(member, book)
    response = client.delete(f"{API}/books/{removed['id']}", headers=desk.headers(librarian))
    assert response.status_code == 204, response.text
    stats = _stats(client, desk, librarian)
    assert (stats["books"], stats["copies"], stats["active_loans"]) == (1, 1, 0)
    assert stats["top_borrowed"] == [{"book_id": kept["id"], "title": "Kept", "loans": 1}]


def test_stats_are_for_librarians(client: TestClient, desk: Desk, member: Account) -> None:
    response = client.get(STATS, headers=desk.headers(member))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert client.get(STATS).status_code == 401


def test_the_ranking_counts_every_loan_ever_and_breaks_ties_by_title_then_id(
    client: TestClient,
    desk: Desk,
    librarian: Account,
    member: Account,
    other_member: Account,
) -> None:
    # Two books of one title, the first created has the lower id.
    first_same, second_same = desk.book("Same"), desk.book("Same")
    zed, held, alpha = desk.book("Zed"), desk.book("Held"), desk.book("Alpha")
    desk.book("Never borrowed")
    for _ in range(3):  # three loans, all returned
        desk.borrow(member, zed)
        desk.give_back(member, zed)
    desk.borrow(member, held)
    refused = client.post(f"{API}/books/{held['id']}/borrow", headers=desk.headers(other_member))
    assert refused.status_code == 409  # a refused borrow is no loan
    desk.reserve(other_member, held)
    desk.give_back(member, held)  # the copy is held for other_member...
    desk.borrow(other_member, held)  # ...who borrows it: a loan of a held copy counts too
    for book in (second_same, first_same, alpha):
        desk.borrow(member, book)
    desk.give_back(member, second_same)

    top = _stats(client, desk, librarian)["top_borrowed"]
    assert top == [
        {"book_id": zed["id"], "title": "Zed", "loans": 3},
        {"book_id": held["id"], "title": "Held", "loans": 2},
        {"book_id": alpha["id"], "title": "Alpha", "loans": 1},
        {"book_id": first_same["id"], "title": "Same", "loans": 1},
        {"book_id": second_same["id"], "title": "Same", "loans": 1},
    ]
    assert first_same["id"] < second_same["id"]
