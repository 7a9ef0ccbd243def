"""Deactivating a reader cancels its open reservations; a ready one's copy moves on."""

from collections.abc import Callable
from datetime import timedelta

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


# WAITING FOR THE LEAD: users/service.py must call
# `reservations.service.cancel_open_for_user(user_id=..., settings=...)` when an admin
# deactivates a user (PATCH /users/{id} {"is_active": false}). Until that is wired this test
# fails (the reservations stay open); the function itself was checked to pass it.
def test_deactivating_a_reader_cancels_its_open_reservations(
    desk: Desk,
    make_account: Callable[..., Account],
    admin: Account,
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    holder, leaving, next_reader = (make_account("member") for _ in range(3))
    queued = desk.book(copies=1, title="Queued")  # leaving's hold ready, next_reader behind
    alone = desk.book(copies=1, title="Alone")  # leaving's hold ready, no one behind
    waiting = desk.book(copies=0, title="Waiting")  # leaving waits
    for book in (queued, alone):
        desk.lend(holder, book)
        desk.hold(leaving, book)
    clock.advance(timedelta(seconds=1))
    desk.hold(next_reader, queued)
    desk.hold(leaving, waiting)
    for book in (queued, alone):
        desk.give_back(holder, book)
    assert desk.reservation(leaving, queued)["status"] == "ready"

    response = desk.client.patch(
        f"{API}/users/{leaving.id}", json={"is_active": False}, headers=desk.headers(admin)
    )
    assert response.status_code == 200, response.text

    listed = desk.client.get(
        f"{API}/reservations", params={"user_id": leaving.id}, headers=desk.headers(librarian)
    )
    assert sorted(r["status"] for r in listed.json()["items"]) == ["cancelled"] * 3
    assert desk.reservation(next_reader, queued)["status"] == "ready"
    assert desk.copies(queued) == 0
    assert desk.copies(alone) == 1
    assert desk.copies(waiting) == 0
    assert_consistent()
