"""Where a copy goes when it comes back, when a hold lapses and when a ready hold is cancelled."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk

PICKUP = timedelta(days=3)


def _notified(desk: Desk, reader: Account) -> list[dict[str, Any]]:
    response = desk.client.get(f"{API}/notifications/me", headers=desk.headers(reader))
    assert response.status_code == 200, response.text
    return [n for n in response.json()["items"] if n["kind"] == "reservation_ready"]


def _queue(
    desk: Desk, make_account: Callable[..., Account], waiting: int
) -> tuple[str, Account, list[Account]]:
    """A one-copy book lent to a holder, with `waiting` readers queued in order."""
    holder = make_account("member")
    readers = [make_account("member") for _ in range(waiting)]
    book = desk.book(copies=1, title="Wanted")
    desk.lend(holder, book)
    for reader in readers:
        desk.hold(reader, book)
        clock.advance(timedelta(seconds=1))
    return book, holder, readers


def test_a_returned_copy_goes_to_the_oldest_waiting_reader(
    desk: Desk, make_account: Callable[..., Account], assert_consistent: Callable[[], None]
) -> None:
    book, holder, (first, second) = _queue(desk, make_account, 2)
    assert desk.give_back(holder, book).status_code == 200
    ready = desk.reservation(first, book)
    assert ready["status"] == "ready"
    assert ready["position"] is None
    assert abs(datetime.fromisoformat(ready["ready_until"]) - (clock.now() + PICKUP)) < timedelta(
        seconds=5
    )
    assert desk.reservation(second, book)["position"] == 1
    assert desk.copies(book) == 0  # the held copy is not on the shelf
    notes = _notified(desk, first)
    assert [n["reservation_id"] for n in notes] == [ready["id"]]
    assert _notified(desk, second) == []
    assert_consistent()


def test_only_the_holder_can_borrow_the_held_copy(
    desk: Desk,
    make_account: Callable[..., Account],
    member: Account,
    assert_consistent: Callable[[], None],
) -> None:
    book, holder, (first, second) = _queue(desk, make_account, 2)
    desk.give_back(holder, book)
    for other in (member, second, holder):
        refused = desk.borrow(other, book)
        assert (refused.status_code, refused.json()["code"]) == (409, "no_copies_available")
    loan = desk.lend(first, book)
    assert loan["user_id"] == first.id
    assert desk.reservation(first, book)["status"] == "fulfilled"
    assert desk.reservation(second, book)["position"] == 1
    assert desk.copies(book) == 0
    assert_consistent()
    # The next return goes to the next in line.
    desk.give_back(first, book)
    assert desk.reservation(second, book)["status"] == "ready"
    assert_consistent()


def test_holder_takes_the_held_copy_even_with_one_on_the_shelf(
    desk: Desk,
    make_account: Callable[..., Account],
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    book, holder, (first,) = _queue(desk, make_account, 1)
    desk.give_back(holder, book)
    assert desk.reservation(first, book)["status"] == "ready"
    grown = desk.client.patch(
        f"{API}/books/{book}", json={"total_copies": 2}, headers=desk.headers(librarian)
    )
    assert grown.status_code == 200, grown.text
    assert desk.copies(book) == 1
    desk.lend(first, book)
    assert desk.reservation(first, book)["status"] == "fulfilled"
    # The shelf copy stays for anyone; the held one is the one lent.
    assert desk.copies(book) == 1
    assert_consistent()


def test_a_lapsed_hold_passes_to_the_next_reader_then_to_the_shelf(
    desk: Desk,
    make_account: Callable[..., Account],
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    book, holder, (first, second) = _queue(desk, make_account, 2)
    desk.give_back(holder, book)
    clock.advance(PICKUP - timedelta(minutes=1))
    assert desk.reservation(first, book)["status"] == "ready"
    clock.advance(timedelta(minutes=2))
    # Listing expires lapsed holds (so does the notification scan, and borrowing or reserving).
    assert desk.reservation(first, book)["status"] == "expired"
    handed = desk.reservation(second, book)
    assert handed["status"] == "ready"
    assert datetime.fromisoformat(handed["ready_until"]) > clock.now() + PICKUP - timedelta(
        minutes=1
    )
    assert [n["reservation_id"] for n in _notified(desk, second)] == [handed["id"]]
    assert desk.copies(book) == 0
    assert_consistent()
    clock.advance(PICKUP + timedelta(minutes=1))
    run = desk.client.post(f"{API}/admin/notifications/run", headers=desk.headers(_admin(desk)))
    assert run.status_code == 200, run.text
    assert desk.copies(book) == 1  # the scan expired the hold: nobody left, so to the shelf
    lib = desk.client.get(
        f"{API}/reservations", params={"book_id": book}, headers=desk.headers(librarian)
    ).json()
    assert sorted(r["status"] for r in lib["items"]) == ["expired", "expired"]
    assert desk.copies(book) == 1
    assert_consistent()


def _admin(desk: Desk) -> Account:
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login

    tokens = login(desk.client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return Account("", ADMIN_EMAIL, ADMIN_PASSWORD, "admin", tokens["access_token"], "")


def test_pickup_days_come_from_the_settings(
    app_with: Callable[..., Any], make_account: Callable[..., Account], librarian: Account
) -> None:
    reader, holder = make_account("member"), make_account("member")
    with app_with(hold_pickup_days=1) as other:
        desk = Desk(other, librarian)
        book = desk.book()
        desk.lend(holder, book)
        desk.hold(reader, book)
        desk.give_back(holder, book)
        ready = desk.reservation(reader, book)
    assert abs(
        datetime.fromisoformat(ready["ready_until"]) - (clock.now() + timedelta(days=1))
    ) < timedelta(seconds=5)


def test_borrowing_expires_a_lapsed_hold_first(
    desk: Desk,
    make_account: Callable[..., Account],
    member: Account,
    assert_consistent: Callable[[], None],
) -> None:
    book, holder, (first,) = _queue(desk, make_account, 1)
    desk.give_back(holder, book)
    clock.advance(PICKUP + timedelta(minutes=1))
    # The lapsed hold is expired on the spot; no one else waits, so the copy is free to lend.
    loan = desk.borrow(member, book)
    assert loan.status_code == 201, loan.text
    assert desk.reservation(first, book)["status"] == "expired"
    assert_consistent()


def test_a_lapsed_holder_borrows_only_a_free_copy(
    desk: Desk, make_account: Callable[..., Account], assert_consistent: Callable[[], None]
) -> None:
    book, holder, (first, second) = _queue(desk, make_account, 2)
    desk.give_back(holder, book)
    clock.advance(PICKUP + timedelta(minutes=1))
    refused = desk.borrow(first, book)
    assert (refused.status_code, refused.json()["code"]) == (409, "no_copies_available")
    assert desk.reservation(second, book)["status"] == "ready"
    assert_consistent()


def test_reserving_expires_a_lapsed_hold_first(
    desk: Desk, make_account: Callable[..., Account], member: Account
) -> None:
    book, holder, (first,) = _queue(desk, make_account, 1)
    desk.give_back(holder, book)
    clock.advance(PICKUP + timedelta(minutes=1))
    refused = desk.reserve(member, book)
    assert (refused.status_code, refused.json()["code"]) == (409, "copies_available")
    assert desk.reservation(first, book)["status"] == "expired"


def test_cancelling_a_ready_hold_passes_the_copy_on(
    desk: Desk,
    make_account: Callable[..., Account],
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    book, holder, (first, second) = _queue(desk, make_account, 2)
    desk.give_back(holder, book)
    ready = desk.reservation(first, book)
    gone = desk.client.delete(f"{API}/reservations/{ready['id']}", headers=desk.headers(first))
    assert gone.status_code == 204
    handed = desk.reservation(second, book)
    assert handed["status"] == "ready"
    assert desk.copies(book) == 0
    assert_consistent()
    by_desk = desk.client.delete(
        f"{API}/reservations/{handed['id']}", headers=desk.headers(librarian)
    )
    assert by_desk.status_code == 204
    assert desk.copies(book) == 1
    assert_consistent()


def test_a_reader_who_got_a_shelf_copy_meanwhile_is_skipped(
    desk: Desk,
    make_account: Callable[..., Account],
    raw_db: Any,
    assert_consistent: Callable[[], None],
) -> None:
    book, holder, (first, second) = _queue(desk, make_account, 2)
    # A copy reaches the shelf while readers wait only when a borrower beats a hand-over to
    # it (reservations._shelve), and that borrower may be a reader in the queue: set it up.
    raw_db.books.update_one(
        {"_id": ObjectId(book)}, {"$inc": {"total_copies": 1, "available_copies": 1}}
    )
    desk.lend(first, book)  # the shelf copy, while still in the queue
    desk.give_back(holder, book)
    assert desk.reservation(first, book)["status"] == "fulfilled"
    assert desk.reservation(second, book)["status"] == "ready"
    assert _notified(desk, first) == []
    assert_consistent()


def test_the_last_hold_handed_back_puts_the_copy_on_the_shelf(
    desk: Desk, make_account: Callable[..., Account], assert_consistent: Callable[[], None]
) -> None:
    book, holder, (first,) = _queue(desk, make_account, 1)
    desk.give_back(holder, book)
    desk.lend(first, book)
    desk.give_back(first, book)
    assert desk.copies(book) == 1
    assert desk.reservation(first, book)["status"] == "fulfilled"
    assert_consistent()


def test_copies_added_while_readers_wait_go_to_the_queue(
    desk: Desk,
    make_account: Callable[..., Account],
    librarian: Account,
    member: Account,
    assert_consistent: Callable[[], None],
) -> None:
    book, _, (first, second) = _queue(desk, make_account, 2)
    raised = desk.client.patch(
        f"{API}/books/{book}", json={"total_copies": 2}, headers=desk.headers(librarian)
    )
    assert raised.status_code == 200, raised.text
    assert (raised.json()["total_copies"], raised.json()["available_copies"]) == (2, 0)
    ready = desk.reservation(first, book)
    assert ready["status"] == "ready"
    assert [n["reservation_id"] for n in _notified(desk, first)] == [ready["id"]]
    assert desk.reservation(second, book)["position"] == 1
    refused = desk.borrow(member, book)
    assert (refused.status_code, refused.json()["code"]) == (409, "no_copies_available")
    assert_consistent()

    # More copies than readers: each reader gets one, the rest go on the shelf.
    desk.client.patch(
        f"{API}/books/{book}", json={"total_copies": 5}, headers=desk.headers(librarian)
    )
    assert desk.reservation(second, book)["status"] == "ready"
    assert desk.copies(book) == 2
    assert desk.borrow(member, book).status_code == 201
    assert desk.borrow(first, book).status_code == 201
    assert desk.reservation(first, book)["status"] == "fulfilled"
    assert_consistent()


def test_the_waiting_count_follows_the_queue(
    desk: Desk, make_account: Callable[..., Account], raw_db: Any
) -> None:
    """Joined before the reservation is written, left once it stops waiting or is refused."""
    holder, first, second = (make_account("member") for _ in range(3))
    book = desk.book(copies=1)

    def waiting() -> int:
        return int(raw_db.books.find_one({"_id": ObjectId(book)})["waiting_readers"])

    assert desk.reserve(first, book).json()["code"] == "copies_available"
    assert waiting() == 0
    desk.lend(holder, book)
    desk.hold(first, book)
    desk.hold(second, book)
    assert desk.reserve(second, book).json()["code"] == "already_reserved"
    assert waiting() == 2
    assert desk.give_back(holder, book).status_code == 200
    assert desk.reservation(first, book)["status"] == "ready"
    assert waiting() == 1
    cancelled = desk.client.delete(
        f"/api/v1/reservations/{desk.reservation(second, book)['id']}",
        headers=desk.headers(second),
    )
    assert cancelled.status_code == 204, cancelled.text
    assert waiting() == 0


def test_books_from_before_the_waiting_count_start_it_when_needed(
    desk: Desk,
    make_account: Callable[..., Account],
    raw_db: Any,
    consistency: Callable[[], tuple[int, str]],
) -> None:
    """No pass over the catalogue at start-up: a book without the count is treated as if
    readers might wait, and starts counting at its next reservation or shelved copy."""
    holder, reader, later = (make_account("member") for _ in range(3))
    queued, quiet = desk.book(copies=1), desk.book(copies=1)
    desk.lend(holder, queued)
    desk.hold(reader, queued)
    desk.lend(holder, quiet)
    raw_db.books.update_many({}, {"$unset": {"waiting_readers": ""}})

    def count(book: str) -> Any:
        return raw_db.books.find_one({"_id": ObjectId(book)}).get("waiting_readers")

    status, output = consistency()
    assert status == 0, output  # unknown is not drift
    assert desk.give_back(holder, queued).status_code == 200
    assert desk.reservation(reader, queued)["status"] == "ready"
    assert count(queued) is None
    desk.hold(later, queued)
    assert count(queued) == 1
    assert desk.give_back(holder, quiet).status_code == 200
    assert desk.copies(quiet) == 1 and count(quiet) == 0
