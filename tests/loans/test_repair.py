"""`library-api check-consistency --repair` sets drifted counters right, and only those."""

import io
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from library_api.config import Settings
from tests.conftest import Account
from tests.loans.support import API, Desk, finish_borrow, run_cli

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Run:
    def run(*argv: str, output: io.StringIO | None = None) -> tuple[int, str]:
        return run_cli(client, settings, monkeypatch, *argv, output=output)

    return run


def _cut_off_return(raw_db: Any, loan: dict[str, Any]) -> None:
    """A return that closed the loan and stopped there: no counter moved."""
    raw_db.loans.update_one(
        {"_id": ObjectId(loan["id"])}, {"$set": {"status": "returned", "returned_at": clock.now()}}
    )


def _active_loans(desk: Desk, account: Account) -> int:
    response = desk.client.get(f"{API}/users/me", headers=desk.headers(account))
    assert response.status_code == 200, response.text
    return int(response.json()["active_loans"])


def test_repair_after_a_return_cut_off_half_way(
    desk: Desk, member: Account, other_member: Account, raw_db: Any, cli: Run
) -> None:
    book = desk.book(copies=1, title="Cut off")
    loan = desk.lend(member, book)
    _cut_off_return(raw_db, loan)
    assert desk.borrow(other_member, book).json()["code"] == "no_copies_available"
    for _ in range(5):
        # The reader's counter still counts the closed loan: the limit comes too early.
        assert desk.give_back(member, desk.lend(member, desk.book())["book_id"]).status_code == 200
    raw_db.users.update_one({"_id": ObjectId(member.id)}, {"$set": {"active_loans": 5}})
    drifted = cli("check-consistency")
    assert drifted[0] == 1

    status, output = cli("check-consistency", "--repair")
    assert status == 0, output
    repaired = [line for line in output.splitlines() if line.startswith("repaired ")]
    assert len(repaired) == 2, output
    assert any(book in line and "loaned_copies 1 (expected 0)" in line for line in repaired)
    assert any(member.id in line and "active_loans 5 (expected 0)" in line for line in repaired)
    assert output.strip().splitlines()[-1].startswith("consistent")
    assert cli("check-consistency")[0] == 0

    assert desk.copies(book) == 1
    assert _active_loans(desk, member) == 0
    assert desk.borrow(other_member, book).status_code == 201
    assert desk.borrow(member, desk.book()).status_code == 201
    assert _active_loans(desk, member) == 1
    assert cli("check-consistency")[0] == 0


def test_a_repaired_copy_goes_to_the_waiting_reader(
    desk: Desk, make_account: Callable[..., Account], member: Account, raw_db: Any, cli: Run
) -> None:
    holder, reader = make_account("member"), make_account("member")
    book = desk.book(copies=1)
    loan = desk.lend(holder, book)
    desk.hold(reader, book)
    _cut_off_return(raw_db, loan)

    status, output = cli("check-consistency", "--repair")
    assert status == 0, output
    assert desk.reservation(reader, book)["status"] == "ready"
    assert desk.copies(book) == 0
    assert desk.borrow(member, book).json()["code"] == "no_copies_available"
    assert desk.borrow(reader, book).status_code == 201
    assert cli("check-consistency")[0] == 0


def test_repair_leaves_what_only_a_librarian_can_settle(
    desk: Desk, member: Account, other_member: Account, raw_db: Any, cli: Run
) -> None:
    short = desk.book(copies=1, title="Short")
    fine = desk.book(copies=2, title="Fine")
    desk.lend(member, short)
    desk.lend(other_member, fine)
    raw_db.books.update_one({"_id": ObjectId(short)}, {"$set": {"total_copies": 0}})
    raw_db.books.update_one({"_id": ObjectId(fine)}, {"$inc": {"available_copies": 1}})

    status, output = cli("check-consistency", "--repair")
    assert status == 1
    assert any(line.startswith("repaired ") and fine in line for line in output.splitlines())
    assert "more copies out than total_copies 0" in output
    stored = raw_db.books.find_one({"_id": ObjectId(short)})
    assert (stored["loaned_copies"], stored["available_copies"]) == (1, 0)
    assert desk.copies(fine) == 1


def test_repair_does_not_undo_a_borrow_in_flight(
    desk: Desk, member: Account, raw_db: Any, cli: Run
) -> None:
    book = desk.book(copies=2, title="In flight")
    # A borrow between its writes: the slot and the copy are taken, the loan not yet written.
    raw_db.users.update_one({"_id": ObjectId(member.id)}, {"$inc": {"active_loans": 1}})
    raw_db.books.update_one(
        {"_id": ObjectId(book)}, {"$inc": {"available_copies": -1, "loaned_copies": 1}}
    )
    output = io.StringIO()
    result: list[tuple[int, str]] = []
    repair = threading.Thread(
        target=lambda: result.append(cli("check-consistency", "--repair", output=output))
    )
    repair.start()
    deadline = time.monotonic() + 30
    while "looking again" not in output.getvalue():
        assert repair.is_alive() and time.monotonic() < deadline, output.getvalue()
        time.sleep(0.01)
    # The borrow finishes while the repair waits to look again.
    finish_borrow(raw_db, member, book, "In flight")
    repair.join(30)
    status, text = result[0]
    assert status == 0, text
    assert "repaired " not in text
    assert desk.copies(book) == 1
    assert _active_loans(desk, member) == 1
    assert desk.give_back(member, book).status_code == 200
    assert cli("check-consistency")[0] == 0
