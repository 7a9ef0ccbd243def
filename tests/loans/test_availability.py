"""`GET /books/{id}/availability`: every blocker a borrow or a reservation would meet, by the
rules those paths apply, so each check here also tries the borrow and the reservation and
compares the codes they answer with."""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, get_args

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from library_api.books.schemas import BorrowBlocker, ReserveBlocker
from library_api.loans.rules import BORROW_REFUSALS
from library_api.reservations.rules import RESERVE_REFUSALS
from tests.conftest import Account
from tests.loans.support import API, Desk

PICKUP = timedelta(days=3)


@pytest.fixture
def settings_of(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change the running app's settings for this test (they are read per request)."""

    def change(**values: int) -> None:
        settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value)

    return change


@pytest.fixture
def fines_on(settings_of: Callable[..., None]) -> Iterator[None]:
    settings_of(fine_per_day_cents=50, fine_max_cents=400, fine_block_cents=100)
    yield


def availability(desk: Desk, account: Account, book: str) -> dict[str, Any]:
    response = desk.client.get(f"{API}/books/{book}/availability", headers=desk.headers(account))
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = response.json()
    assert seen["can_borrow"] == (seen["borrow_blockers"] == [])
    assert seen["can_reserve"] == (seen["reserve_blockers"] == [])
    return seen


def agrees(desk: Desk, account: Account, book: str) -> dict[str, Any]:
    """The availability, then a reservation and a borrow tried: each is refused with the
    first of its blockers, or succeeds when it has none (the refused ones go first: they
    change nothing, and both lists are never empty at once)."""
    seen = availability(desk, account, book)
    assert seen == availability(desk, account, book)  # it changes nothing
    assert seen["borrow_blockers"] or seen["reserve_blockers"]
    attempts = [("reserve_blockers", desk.reserve), ("borrow_blockers", desk.borrow)]
    attempts.sort(key=lambda attempt: not seen[attempt[0]])
    for blockers, attempt in attempts:
        response = attempt(account, book)
        if seen[blockers]:
            assert response.status_code == 409, response.text
            assert response.json()["code"] == seen[blockers][0], (blockers, seen)
        else:
            assert response.status_code == 201, (blockers, response.text)
    return seen


def _due(loan: dict[str, Any]) -> str:
    return datetime.fromisoformat(loan["due_at"]).date().isoformat()


def test_the_schema_lists_the_codes_of_the_rules_in_their_order() -> None:
    assert list(get_args(BorrowBlocker)) == list(BORROW_REFUSALS)
    assert list(get_args(ReserveBlocker)) == list(RESERVE_REFUSALS)


def test_a_copy_on_the_shelf(desk: Desk, member: Account) -> None:
    book = desk.book(copies=2)
    assert agrees(desk, member, book) == {
        "book_id": book,
        "available_copies": 2,
        "waiting_reservations": 0,
        "can_borrow": True,
        "borrow_blockers": [],
        "can_reserve": False,
        "reserve_blockers": ["copies_available"],
        "my_loan_id": None,
        "my_reservation_id": None,
        "my_position": None,
        "estimated_ready_on": None,
    }
    (loan,) = desk.client.get(f"{API}/loans/me", headers=desk.headers(member)).json()["items"]
    seen = agrees(desk, member, book)  # the borrow is refused: already_borrowed
    assert seen["my_loan_id"] == loan["id"]
    assert seen["available_copies"] == 1
    assert seen["borrow_blockers"] == ["already_borrowed"]
    assert seen["reserve_blockers"] == ["copies_available", "already_borrowed"]


def test_the_last_copy_out_then_the_queue(
    desk: Desk, member: Account, other_member: Account
) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    mine = agrees(desk, member, book)
    assert mine["my_loan_id"] == loan["id"]
    assert mine["borrow_blockers"] == ["already_borrowed", "no_copies_available"]
    assert mine["reserve_blockers"] == ["already_borrowed"]
    theirs = agrees(desk, other_member, book)  # the reservation goes through
    assert (theirs["borrow_blockers"], theirs["reserve_blockers"]) == (["no_copies_available"], [])
    reservation = desk.reservation(other_member, book)
    waiting = agrees(desk, other_member, book)
    assert waiting["my_reservation_id"] == reservation["id"]
    assert (waiting["my_position"], waiting["waiting_reservations"]) == (1, 1)
    assert waiting["estimated_ready_on"] == _due(loan)
    assert waiting["reserve_blockers"] == ["already_reserved"]
    assert waiting["borrow_blockers"] == ["no_copies_available"]


def test_a_ready_hold_is_a_copy_for_its_reader_only(
    desk: Desk, member: Account, other_member: Account, make_account: Callable[..., Account]
) -> None:
    book = desk.book()
    desk.lend(member, book)
    reservation = desk.hold(other_member, book)
    assert desk.give_back(member, book).status_code == 200
    third = make_account()
    seen = agrees(desk, third, book)  # a copy held for another is not on the shelf
    assert seen["available_copies"] == 0
    assert (seen["borrow_blockers"], seen["reserve_blockers"]) == (["no_copies_available"], [])
    ready = availability(desk, other_member, book)
    assert ready["my_reservation_id"] == reservation["id"]
    assert (ready["my_position"], ready["estimated_ready_on"]) == (None, None)
    assert ready["waiting_reservations"] == 1  # the third reader
    agrees(desk, other_member, book)  # the borrow takes the held copy
    assert ready["borrow_blockers"] == [] and ready["reserve_blockers"] == ["already_reserved"]
    after = availability(desk, other_member, book)
    assert after["my_reservation_id"] is None and after["my_loan_id"] is not None


def test_a_lapsed_hold_counts_as_expired_without_being_expired(
    desk: Desk,
    member: Account,
    other_member: Account,
    make_account: Callable[..., Account],
    raw_db: Any,
) -> None:
    book, third = desk.book(), make_account()  # accounts before the clock moves
    desk.lend(member, book)
    lapsing = desk.hold(other_member, book)
    assert desk.give_back(member, book).status_code == 200
    clock.advance(PICKUP + timedelta(minutes=1))
    lapsed = availability(desk, other_member, book)
    assert lapsed["my_reservation_id"] is None
    assert lapsed["available_copies"] == 1  # no one waits: the copy would go to the shelf
    assert lapsed["reserve_blockers"] == ["copies_available"]
    seen = availability(desk, third, book)
    assert (seen["borrow_blockers"], seen["reserve_blockers"]) == ([], ["copies_available"])
    stored = raw_db.reservations.find_one({"_id": ObjectId(lapsing["id"])})
    assert stored["status"] == "ready"  # looking changed nothing
    agrees(desk, third, book)  # the borrow expires the hold and takes the copy


def test_a_lapsed_hold_passes_to_the_next_in_line(
    desk: Desk, member: Account, other_member: Account, make_account: Callable[..., Account]
) -> None:
    book = desk.book()
    desk.lend(member, book)
    desk.hold(other_member, book)
    next_in_line, fourth = make_account(), make_account()
    clock.advance(timedelta(seconds=1))
    waiting = desk.hold(next_in_line, book)
    assert desk.give_back(member, book).status_code == 200
    clock.advance(PICKUP + timedelta(minutes=1))
    promoted = availability(desk, next_in_line, book)
    assert promoted["my_reservation_id"] == waiting["id"]
    assert (promoted["my_position"], promoted["waiting_reservations"]) == (None, 0)
    assert promoted["borrow_blockers"] == []
    seen = agrees(desk, fourth, book)  # the copy is the next reader's: fourth joins the queue
    assert seen["borrow_blockers"] == ["no_copies_available"] and seen["available_copies"] == 0
    agrees(desk, next_in_line, book)  # the borrow expires the lapsed hold and takes the copy


def test_estimated_ready_dates_follow_the_due_dates(
    desk: Desk, member: Account, other_member: Account, make_account: Callable[..., Account]
) -> None:
    book, readers = desk.book(copies=2), [make_account() for _ in range(3)]
    later = desk.lend(other_member, book)
    clock.advance(timedelta(days=2))
    sooner = desk.lend(member, book)
    # A librarian's correction makes the second loan the first due.
    corrected = (datetime.fromisoformat(later["due_at"]) - timedelta(days=5)).isoformat()
    patched = desk.client.patch(
        f"{API}/loans/{sooner['id']}",
        json={"due_at": corrected},
        headers=desk.headers(desk.librarian),
    )
    assert patched.status_code == 200, patched.text
    for reader in readers:
        clock.advance(timedelta(seconds=1))
        desk.hold(reader, book)
    seen = [availability(desk, reader, book) for reader in readers]
    assert [s["my_position"] for s in seen] == [1, 2, 3]
    assert [s["estimated_ready_on"] for s in seen] == [_due(patched.json()), _due(later), None]
    assert {s["waiting_reservations"] for s in seen} == {3}
    # Not waiting: no position, no date; a borrower sees theirs as none.
    assert availability(desk, member, book)["estimated_ready_on"] is None


def test_overdue_loans_and_the_loan_limit(
    desk: Desk, member: Account, settings_of: Callable[..., None]
) -> None:
    settings_of(max_active_loans=2)
    first, second, third = desk.book(), desk.book(), desk.book()
    desk.lend(member, first)
    seen = agrees(desk, member, second)
    assert seen["borrow_blockers"] == []
    assert agrees(desk, member, third)["borrow_blockers"] == ["loan_limit_reached"]
    clock.advance(timedelta(days=15))
    seen = agrees(desk, member, third)
    assert seen["borrow_blockers"] == ["has_overdue_loans", "loan_limit_reached"]
    assert seen["reserve_blockers"] == ["copies_available"]


def test_an_overdue_loan_of_this_book(desk: Desk, member: Account) -> None:
    book = desk.book()
    desk.lend(member, book)
    clock.advance(timedelta(days=15))
    seen = agrees(desk, member, book)
    assert seen["borrow_blockers"] == [
        "has_overdue_loans",
        "already_borrowed",
        "no_copies_available",
    ]


def test_fines_block_only_while_they_are_on(
    desk: Desk, member: Account, settings_of: Callable[..., None], fines_on: None
) -> None:
    late, fresh = desk.book(), desk.book()
    desk.lend(member, late)
    clock.advance(timedelta(days=16))
    assert desk.give_back(member, late).status_code == 200
    seen = agrees(desk, member, fresh)
    assert seen["borrow_blockers"] == ["fines_outstanding"]
    settings_of(fine_block_cents=0)  # 0 never blocks
    assert agrees(desk, member, fresh)["borrow_blockers"] == []


def test_every_borrow_blocker_at_once(
    desk: Desk, member: Account, settings_of: Callable[..., None], fines_on: None
) -> None:
    returned, kept = desk.book(), desk.book()
    desk.lend(member, returned)
    desk.lend(member, kept)
    clock.advance(timedelta(days=16))
    assert desk.give_back(member, returned).status_code == 200  # fined 100: blocks
    settings_of(max_active_loans=1)
    seen = agrees(desk, member, kept)
    assert seen["borrow_blockers"] == list(BORROW_REFUSALS)
    assert seen["reserve_blockers"] == ["already_borrowed"]


def test_unknown_and_malformed_books_are_404(desk: Desk, member: Account) -> None:
    for book in ("6650f1c2a4b5c6d7e8f90123", "not-an-id"):
        response = desk.client.get(f"{API}/books/{book}/availability", headers=desk.headers(member))
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert desk.client.get(f"{API}/books/{desk.book()}/availability").status_code == 401
