"""One active loan and one open reservation per reader and book, held by a plain unique index
on a string key (db.pair_key) instead of a compound one; a database written before gets the
keys and loses the old indexes at start-up (db.build_indexes)."""

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError
from starlette.testclient import TestClient

from library_api import clock
from library_api.reservations import service as reservations
from tests.conftest import Account
from tests.loans.support import API, Desk


def _legacy_loan(member: Account, book: str) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "book_id": ObjectId(book),
        "user_id": ObjectId(member.id),
        "book_title": "Dune",
        "borrowed_at": clock.now(),
        "due_at": clock.now() + timedelta(days=14),
        "returned_at": None,
        "renewals": 0,
        "status": "active",
        "fine_cents": 0,
    }


def test_the_keys_come_and_go_with_the_loan_and_the_hold(
    desk: Desk, member: Account, other_member: Account, raw_db: Any
) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    stored = raw_db.loans.find_one({"_id": ObjectId(loan["id"])})
    assert stored["active_key"] == f"{member.id}:{book}"
    hold = desk.hold(other_member, book)
    assert raw_db.reservations.find_one({"_id": ObjectId(hold["id"])})["open_key"] == (
        f"{other_member.id}:{book}"
    )
    # The index itself refuses a second active loan of the pair, whatever the request.
    with pytest.raises(DuplicateKeyError):
        raw_db.loans.insert_one({**stored, "_id": ObjectId()})
    assert desk.give_back(member, book).status_code == 200
    assert "active_key" not in raw_db.loans.find_one({"_id": ObjectId(loan["id"])})
    collected = desk.lend(other_member, book)
    assert "open_key" not in raw_db.reservations.find_one({"_id": ObjectId(hold["id"])})
    # Returned loans and closed holds hold no place: the pair borrows and reserves again.
    assert desk.give_back(other_member, book).status_code == 200
    again = desk.lend(member, book)
    assert again["id"] != loan["id"] and collected["id"] != loan["id"]
    assert raw_db.loans.count_documents({"active_key": f"{member.id}:{book}"}) == 1


def test_an_older_database_gets_the_keys_and_loses_the_compound_indexes(
    desk: Desk,
    member: Account,
    other_member: Account,
    raw_db: Any,
    app_with: Callable[..., Any],
) -> None:
    book, other, third = desk.book(), desk.book(title="Other"), desk.book(title="Third")
    desk.lend(other_member, other)  # so that reserving it is allowed, once
    legacy = _legacy_loan(member, book)
    raw_db.loans.insert_one(legacy)
    # An active loan whose key an older instance wrote as null.
    nulled = {**_legacy_loan(member, third), "active_key": None}
    raw_db.loans.insert_one(nulled)
    hold = {
        "_id": ObjectId(),
        "book_id": ObjectId(other),
        "user_id": ObjectId(member.id),
        "status": "waiting",
        "open": True,
        "created_at": clock.now(),
    }
    # A reservation an older instance cancelled, keeping the key it had been given.
    stale = {
        **hold,
        "_id": ObjectId(),
        "status": "cancelled",
        "open": False,
        "open_key": f"{other_member.id}:{other}",
        "user_id": ObjectId(other_member.id),
    }
    raw_db.reservations.insert_many([hold, stale])
    old_loans = IndexModel(
        [("user_id", ASCENDING), ("book_id", ASCENDING)],
        unique=True,
        partialFilterExpression={"status": "active"},
        name="one_active_loan_per_user_book",
    )
    old_holds = IndexModel(
        [("user_id", ASCENDING), ("book_id", ASCENDING)],
        unique=True,
        partialFilterExpression={"open": True},
        name="one_open_hold_per_user_book",
    )
    raw_db.loans.create_indexes([old_loans])
    raw_db.reservations.create_indexes([old_holds])

    with app_with() as restarted:
        headers = desk.headers(member)
        refused = restarted.post(f"{API}/books/{book}/borrow", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (409, "already_borrowed")
        twice = restarted.post(f"{API}/books/{other}/reservations", headers=headers)
        assert (twice.status_code, twice.json()["code"]) == (409, "already_reserved")
    assert raw_db.loans.find_one({"_id": legacy["_id"]})["active_key"] == f"{member.id}:{book}"
    assert raw_db.loans.find_one({"_id": nulled["_id"]})["active_key"] == f"{member.id}:{third}"
    assert raw_db.reservations.find_one({"_id": hold["_id"]})["open_key"] == f"{member.id}:{other}"
    assert "open_key" not in raw_db.reservations.find_one({"_id": stale["_id"]})
    assert "one_active_loan_per_user_book" not in raw_db.loans.index_information()
    assert "one_open_hold_per_user_book" not in raw_db.reservations.index_information()
    assert {"one_active_loan"} <= set(raw_db.loans.index_information())
    assert {"one_open_hold"} <= set(raw_db.reservations.index_information())
    with pytest.raises(DuplicateKeyError):
        raw_db.loans.insert_one({**legacy, "_id": ObjectId(), "active_key": f"{member.id}:{book}"})


def test_an_undone_hand_over_gives_the_hold_its_key_back(
    desk: Desk, member: Account, other_member: Account, raw_db: Any, client: TestClient
) -> None:
    """`unclaim` undoes a borrow that claimed a ready hold and then failed, a path no request
    reaches on purpose: called through the running app, on its database."""
    book = desk.book()
    desk.lend(other_member, book)
    hold = desk.hold(member, book)
    assert desk.give_back(other_member, book).status_code == 200
    desk.lend(member, book)
    assert "open_key" not in raw_db.reservations.find_one({"_id": ObjectId(hold["id"])})
    client.portal.call(  # type: ignore[union-attr]
        partial(reservations.unclaim, reservation_id=PydanticObjectId(hold["id"]))
    )
    reopened = raw_db.reservations.find_one({"_id": ObjectId(hold["id"])})
    assert (reopened["status"], reopened["open"]) == ("ready", True)
    assert reopened["open_key"] == f"{member.id}:{book}"
