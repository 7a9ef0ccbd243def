"""`library-api check-consistency` recomputes the counters and reports any drift."""

from collections.abc import Callable
from typing import Any

from bson import ObjectId

from tests.conftest import Account
from tests.loans.support import Desk


def test_clean_database_is_consistent(
    desk: Desk, member: Account, consistency: Callable[[], tuple[int, str]]
) -> None:
    book = desk.book(copies=2)
    desk.lend(member, book)
    status, output = consistency()
    assert status == 0, output
    assert output.strip().splitlines()[-1].startswith("consistent")


def test_drifted_book_and_user_counters_are_reported(
    desk: Desk,
    member: Account,
    other_member: Account,
    raw_db: Any,
    consistency: Callable[[], tuple[int, str]],
) -> None:
    book = desk.book(copies=3, title="Drifting")
    steady = desk.book(copies=1, title="Steady")
    desk.lend(member, book)
    desk.lend(other_member, steady)
    raw_db.books.update_one({"_id": ObjectId(book)}, {"$inc": {"available_copies": 1}})
    raw_db.users.update_one({"_id": ObjectId(member.id)}, {"$set": {"active_loans": 4}})
    status, output = consistency()
    assert status == 1
    drifted = [line for line in output.splitlines() if line.startswith(("book ", "user "))]
    assert len(drifted) == 2, output
    book_line = next(line for line in drifted if line.startswith("book "))
    assert book in book_line and "'Drifting'" in book_line
    assert "available_copies 3 (expected 2)" in book_line
    user_line = next(line for line in drifted if line.startswith("user "))
    assert member.id in user_line and "active_loans 4 (expected 1)" in user_line
    assert "drifted" in output


def test_held_copies_without_ready_reservations_are_drift(
    desk: Desk, raw_db: Any, consistency: Callable[[], tuple[int, str]]
) -> None:
    book = desk.book(copies=2)
    raw_db.books.update_one(
        {"_id": ObjectId(book)}, {"$inc": {"held_copies": 1, "available_copies": -1}}
    )
    status, output = consistency()
    assert status == 1
    assert "held_copies 1 (expected 0)" in output
    assert "available_copies 1 (expected 2)" in output


def test_more_copies_out_than_exist_is_drift(
    desk: Desk, member: Account, raw_db: Any, consistency: Callable[[], tuple[int, str]]
) -> None:
    book = desk.book(copies=1)
    desk.lend(member, book)
    raw_db.books.update_one({"_id": ObjectId(book)}, {"$set": {"total_copies": 0}})
    status, output = consistency()
    assert status == 1
    assert "more copies out than total_copies 0" in output
