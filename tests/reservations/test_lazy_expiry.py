"""Listing reservations expires the lapsed holds the list could show, and only those."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bson import ObjectId

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk

PICKUP = timedelta(days=3)


def _status(raw_db: Any, reservation: dict[str, Any]) -> str:
    # Read from the database: reading through the API is what is under test.
    return str(raw_db.reservations.find_one({"_id": ObjectId(reservation["id"])})["status"])


def _ready_hold(desk: Desk, make_account: Callable[..., Account], title: str) -> Any:
    """A one-copy book whose copy is held for a reader, another reader queued behind."""
    holder, reader, behind = (make_account("member") for _ in range(3))
    book = desk.book(copies=1, title=title)
    desk.lend(holder, book)
    hold = desk.hold(reader, book)
    clock.advance(timedelta(seconds=1))
    queued = desk.hold(behind, book)
    desk.give_back(holder, book)
    return book, (reader, hold), (behind, queued)


def test_reading_lists_expires_only_what_they_could_show(
    desk: Desk,
    make_account: Callable[..., Account],
    member: Account,
    librarian: Account,
    raw_db: Any,
    assert_consistent: Callable[[], None],
) -> None:
    x, (x_reader, x_hold), (x_behind, x_queued) = _ready_hold(desk, make_account, "X")
    y, (_, y_hold), (y_behind, y_queued) = _ready_hold(desk, make_account, "Y")
    z, (_, z_hold), _ = _ready_hold(desk, make_account, "Z")
    clock.advance(PICKUP + timedelta(minutes=1))
    lapsed = (x_hold, y_hold, z_hold)

    # A reader with no reservation of these books: nothing to expire for it.
    assert desk.my_reservations(member) == []
    assert [_status(raw_db, r) for r in lapsed] == ["ready"] * 3

    # The reader queued behind X's hold: its book's lapsed hold is expired, it moves up.
    mine = desk.my_reservations(x_behind)
    assert [(r["id"], r["status"]) for r in mine] == [(x_queued["id"], "ready")]
    assert [_status(raw_db, r) for r in lapsed] == ["expired", "ready", "ready"]
    assert desk.reservation(x_reader, x)["status"] == "expired"

    # A librarian filtering by book or by reader: that book, that reader's books.
    headers = desk.headers(librarian)
    listed = desk.client.get(f"{API}/reservations", params={"book_id": y}, headers=headers)
    assert {r["id"]: r["status"] for r in listed.json()["items"]} == {
        y_hold["id"]: "expired",
        y_queued["id"]: "ready",
    }
    assert _status(raw_db, z_hold) == "ready"
    by_reader = desk.client.get(
        f"{API}/reservations", params={"user_id": y_behind.id}, headers=headers
    )
    assert [r["status"] for r in by_reader.json()["items"]] == ["ready"]
    assert _status(raw_db, z_hold) == "ready"

    # No filter: the whole library is on the page.
    every = desk.client.get(f"{API}/reservations", params={"status": "ready"}, headers=headers)
    assert z_hold["id"] not in {r["id"] for r in every.json()["items"]}
    assert _status(raw_db, z_hold) == "expired"
    assert desk.copies(z) == 0  # passed on to the reader behind
    assert_consistent()


def test_a_reader_sees_its_own_lapsed_hold_expired(
    desk: Desk, make_account: Callable[..., Account], raw_db: Any
) -> None:
    book, (reader, hold), (behind, queued) = _ready_hold(desk, make_account, "Mine")
    clock.advance(PICKUP + timedelta(minutes=1))
    assert _status(raw_db, hold) == "ready"
    assert desk.reservation(reader, book)["status"] == "expired"
    assert _status(raw_db, queued) == "ready"
    assert desk.reservation(behind, book)["status"] == "ready"
