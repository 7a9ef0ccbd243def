"""The background consistency check mends drift by itself, with the `--repair` rules.

The drift is what a borrow cut off between its writes leaves (the process killed after it took
the reader's loan slot and a copy, before it wrote the loan, so no undo ran), made with the raw
driver. The job's runs are triggered here as the scheduler triggers them, in the app's event
loop; the clock is moved, never slept on.
"""

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from library_api.config import Settings
from library_api.loans.consistency import Watch
from library_api.notifications.scheduler import (
    CONSISTENCY_LEASE,
    run_consistency_check,
    start_scanner,
)
from tests.conftest import Account
from tests.loans.support import Desk, finish_borrow


class Run:
    """One run of the job on the app's loop, as `holder` (the same watch from run to run);
    `settle` is how long a drift must stay the same before a run repairs it."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client, self.settings = client, settings
        self.watch = Watch(settings)
        self.settle = self.watch.settle

    def __call__(self, holder: str = "this-instance") -> list[str] | None:
        job = partial(
            run_consistency_check, watch=self.watch, holder=holder, settings=self.settings
        )
        return self.client.portal.call(job)  # type: ignore[union-attr]


@pytest.fixture
def check(client: TestClient, settings: Settings) -> Iterator[Run]:
    yield Run(client, settings)


def _cut_off_borrow(raw_db: Any, member: Account, book: str) -> None:
    """A borrow that took the reader's loan slot and a shelf copy, then died."""
    raw_db.users.update_one({"_id": ObjectId(member.id)}, {"$inc": {"active_loans": 1}})
    raw_db.books.update_one(
        {"_id": ObjectId(book)},
        {"$inc": {"available_copies": -1, "loaned_copies": 1, "loans_ever": 1}},
    )


def _slots(raw_db: Any, account: Account) -> int:
    """The reader's loan-slot counter, as stored (what the loan limit is judged on)."""
    return int(raw_db.users.find_one({"_id": ObjectId(account.id)})["active_loans"])


def _repair_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "consistency check repaired" in r.getMessage()]


def test_the_next_run_mends_a_borrow_cut_off_between_its_writes(
    desk: Desk,
    member: Account,
    other_member: Account,
    raw_db: Any,
    check: Run,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="library_api")
    book = desk.book(copies=1, title="Cut off")
    _cut_off_borrow(raw_db, member, book)
    # The phantom loan: the copy is gone from the shelf, the reader's slot is taken.
    assert desk.borrow(other_member, book).json()["code"] == "no_copies_available"
    assert _slots(raw_db, member) == 1

    # First sight: it may be a borrow in flight; nothing is touched yet.
    assert check() == []
    clock.advance(check.settle / 2)
    assert check() == []
    assert desk.copies(book) == 0

    clock.advance(check.settle)
    repaired = check()
    assert repaired is not None and len(repaired) == 2, repaired
    assert any(book in line and "loaned_copies 1 (expected 0)" in line for line in repaired)
    assert any(member.id in line and "active_loans 1 (expected 0)" in line for line in repaired)
    assert desk.copies(book) == 1
    assert _slots(raw_db, member) == 0
    assert raw_db.books.find_one({"_id": ObjectId(book)})["loans_ever"] == 1

    # Logged once each, one line, no traceback; later runs find nothing more to say.
    clock.advance(timedelta(seconds=5))
    assert check() == []
    lines = _repair_lines(caplog)
    assert len(lines) == 2
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    assert desk.borrow(other_member, book).status_code == 201
    assert desk.borrow(member, desk.book()).status_code == 201
    clock.advance(timedelta(seconds=5))
    assert check() == []


def test_a_borrow_that_finishes_between_two_runs_is_left_alone(
    desk: Desk, member: Account, raw_db: Any, check: Run
) -> None:
    book = desk.book(copies=2, title="In flight")
    _cut_off_borrow(raw_db, member, book)
    assert check() == []
    # The borrow was only slow: it writes its loan before the next run.
    finish_borrow(raw_db, member, book, "In flight")
    clock.advance(check.settle + timedelta(seconds=1))
    assert check() == []
    assert desk.copies(book) == 1
    assert _slots(raw_db, member) == 1
    assert desk.give_back(member, book).status_code == 200
    assert desk.copies(book) == 2


def test_a_repaired_copy_goes_to_the_waiting_reader(
    desk: Desk, make_account: Callable[..., Account], raw_db: Any, check: Run
) -> None:
    holder, reader = make_account("member"), make_account("member")
    book = desk.book(copies=1)
    loan = desk.lend(holder, book)
    desk.hold(reader, book)
    # A return that closed the loan and stopped there.
    raw_db.loans.update_one(
        {"_id": ObjectId(loan["id"])}, {"$set": {"status": "returned", "returned_at": clock.now()}}
    )
    assert check() == []
    clock.advance(check.settle + timedelta(seconds=1))
    assert check()
    assert desk.reservation(reader, book)["status"] == "ready"
    assert desk.copies(book) == 0
    assert desk.borrow(reader, book).status_code == 201


def test_drift_no_repair_can_settle_is_reported_once(
    desk: Desk, member: Account, raw_db: Any, check: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="library_api")
    book = desk.book(copies=1, title="Short")
    desk.lend(member, book)
    raw_db.books.update_one({"_id": ObjectId(book)}, {"$set": {"total_copies": 0}})
    for _ in range(3):
        assert check() == []
        clock.advance(check.settle + timedelta(seconds=1))
    reported = [r for r in caplog.records if "cannot repair" in r.getMessage()]
    assert len(reported) == 1
    assert "more copies out than total_copies 0" in reported[0].getMessage()


def test_the_lease_lets_one_instance_check_at_a_time(
    desk: Desk, member: Account, raw_db: Any, check: Run
) -> None:
    book = desk.book(copies=1)
    _cut_off_borrow(raw_db, member, book)
    raw_db.leases.insert_one(
        {
            "_id": CONSISTENCY_LEASE,
            "holder": "another-instance",
            "expires_at": clock.now() + timedelta(minutes=10),
        }
    )
    assert check() is None
    clock.advance(check.settle + timedelta(seconds=1))
    assert check() is None
    assert desk.copies(book) == 0
    # The holder stopped renewing: once its lease expires, this instance checks.
    clock.advance(timedelta(minutes=10))
    assert check() == []
    clock.advance(check.settle + timedelta(seconds=1))
    assert check()
    assert desk.copies(book) == 1
    assert raw_db.leases.find_one({"_id": CONSISTENCY_LEASE})["holder"] == "this-instance"


def test_no_job_when_both_intervals_are_zero(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(notify_interval_seconds=0, consistency_interval_seconds=0)
    assert start_scanner(settings=settings) is None


def test_a_reservation_cut_off_before_it_was_written_is_mended(
    desk: Desk, member: Account, raw_db: Any, check: Run
) -> None:
    """A reader counted as waiting (`waiting_readers`) whose reservation was never written:
    returns still shelve their copies, and the next runs set the count back."""
    book = desk.book(copies=1, title="Counted")
    desk.lend(member, book)
    raw_db.books.update_one({"_id": ObjectId(book)}, {"$inc": {"waiting_readers": 1}})
    assert desk.give_back(member, book).status_code == 200
    assert desk.copies(book) == 1
    assert check() == []
    clock.advance(check.settle + timedelta(seconds=1))
    repaired = check()
    assert repaired is not None and len(repaired) == 1, repaired
    assert book in repaired[0] and "waiting_readers 1 (expected 0)" in repaired[0]
    assert raw_db.books.find_one({"_id": ObjectId(book)})["waiting_readers"] == 0


def test_a_count_below_the_queue_is_mended_and_the_reader_gets_the_copy(
    desk: Desk, make_account: Callable[..., Account], raw_db: Any, check: Run
) -> None:
    holder, reader = make_account("member"), make_account("member")
    book = desk.book(copies=1)
    desk.lend(holder, book)
    desk.hold(reader, book)
    assert raw_db.books.find_one({"_id": ObjectId(book)})["waiting_readers"] == 1
    # Wrong the other way (never made by a request): the count forgets the waiting reader.
    raw_db.books.update_one({"_id": ObjectId(book)}, {"$set": {"waiting_readers": 0}})
    assert check() == []
    clock.advance(check.settle + timedelta(seconds=1))
    assert check()
    assert desk.give_back(holder, book).status_code == 200
    assert desk.reservation(reader, book)["status"] == "ready"
    assert desk.copies(book) == 0
