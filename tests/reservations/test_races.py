"""Reservations racing returns, pickups and each other."""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.conftest import Account
from tests.loans.support import API, Desk


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_reservations_racing_the_return_of_the_last_copy(
    desk: Desk,
    make_account: Callable[..., Account],
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    holder = make_account("member")
    readers = [make_account("member") for _ in range(6)]
    book = desk.book(copies=1)
    desk.lend(holder, book)
    calls: list[Callable[[], Any]] = [lambda r=r: desk.reserve(r, book) for r in readers]
    results = _at_once([*calls, lambda: desk.give_back(holder, book)])
    placed = [r for r in results[:-1] if r.status_code == 201]
    assert results[-1].status_code == 200
    assert {r.json()["code"] for r in results[:-1] if r.status_code != 201} <= {"copies_available"}
    listed = desk.client.get(
        f"{API}/reservations", params={"book_id": book}, headers=desk.headers(librarian)
    ).json()["items"]
    statuses = Counter(r["status"] for r in listed)
    if placed:
        # The copy never sits on the shelf while someone waits for it.
        assert statuses["ready"] == 1, statuses
        assert desk.copies(book) == 0
        waiting = sorted(r["position"] for r in listed if r["status"] == "waiting")
        assert waiting == list(range(1, len(placed)))
    else:
        assert desk.copies(book) == 1
    assert_consistent()


def test_two_pickups_of_one_held_copy_lend_it_once(
    desk: Desk, make_account: Callable[..., Account], assert_consistent: Callable[[], None]
) -> None:
    holder, reader = make_account("member"), make_account("member")
    book = desk.book(copies=1)
    desk.lend(holder, book)
    desk.hold(reader, book)
    desk.give_back(holder, book)
    results = _at_once([lambda: desk.borrow(reader, book) for _ in range(3)])
    assert Counter(r.status_code for r in results) == {201: 1, 409: 2}
    assert desk.reservation(reader, book)["status"] == "fulfilled"
    assert_consistent()


def test_cancel_racing_pickup(
    desk: Desk, make_account: Callable[..., Account], assert_consistent: Callable[[], None]
) -> None:
    holder, reader, next_reader = (make_account("member") for _ in range(3))
    book = desk.book(copies=1)
    desk.lend(holder, book)
    hold = desk.hold(reader, book)
    desk.hold(next_reader, book)
    desk.give_back(holder, book)
    borrowed, cancelled = _at_once(
        [
            lambda: desk.borrow(reader, book),
            lambda: desk.client.delete(
                f"{API}/reservations/{hold['id']}", headers=desk.headers(reader)
            ),
        ]
    )
    # Exactly one of them wins the ready reservation; the copy goes one way only.
    assert sorted([borrowed.status_code, cancelled.status_code]) in ([201, 409], [204, 409])
    next_status = desk.reservation(next_reader, book)["status"]
    assert next_status == ("waiting" if borrowed.status_code == 201 else "ready")
    assert_consistent()


def test_copies_added_while_outsiders_borrow_go_to_the_queue_first(
    desk: Desk,
    make_account: Callable[..., Account],
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    holder = make_account("member")
    readers = [make_account("member") for _ in range(2)]
    outsiders = [make_account("member") for _ in range(4)]
    book = desk.book(copies=1)
    desk.lend(holder, book)
    for reader in readers:
        desk.hold(reader, book)

    def raise_to_four() -> Any:
        return desk.client.patch(
            f"{API}/books/{book}", json={"total_copies": 4}, headers=desk.headers(librarian)
        )

    borrows: list[Callable[[], Any]] = [lambda o=o: desk.borrow(o, book) for o in outsiders]
    results = _at_once([raise_to_four, *borrows])
    assert results[0].status_code == 200, results[0].text
    # Three copies added, two readers waiting: outsiders share the one copy left over (none
    # if they all asked before the copies were added).
    lent = [r for r in results[1:] if r.status_code == 201]
    assert len(lent) <= 1
    assert {r.json()["code"] for r in results[1:] if r.status_code != 201} == {
        "no_copies_available"
    }
    assert [desk.reservation(r, book)["status"] for r in readers] == ["ready", "ready"]
    assert desk.copies(book) == 1 - len(lent)
    assert_consistent()
