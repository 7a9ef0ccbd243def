"""Many requests at once through the same app: no over-lending, no limit overrun, no drift."""

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import PASSWORD, Account, login
from tests.loans.support import API, Desk


def _accounts(client: TestClient, admin: Account, n: int) -> list[Account]:
    """n members, created by the admin and logged in for real."""

    def make(i: int) -> Account:
        email = f"reader-{i}-{uuid.uuid4().hex[:6]}@example.com"
        created = client.post(
            f"{API}/users",
            json={"name": f"Reader {i}", "email": email, "password": PASSWORD},
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
        tokens = login(client, email, PASSWORD)
        return Account(created.json()["id"], email, PASSWORD, "member", tokens["access_token"], "")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(make, range(n)))


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls from as many threads, released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_fifty_readers_race_for_three_copies(
    desk: Desk, admin: Account, assert_consistent: Callable[[], None]
) -> None:
    readers = _accounts(desk.client, admin, 50)
    book = desk.book(copies=3)
    responses = _at_once([lambda r=r: desk.borrow(r, book) for r in readers])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 409: 47}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"no_copies_available"}
    assert desk.copies(book) == 0
    loans = desk.client.get(
        f"{API}/loans", params={"book_id": book}, headers=desk.headers(desk.librarian)
    ).json()
    winners = {r.json()["user_id"] for r in responses if r.status_code == 201}
    assert {loan["user_id"] for loan in loans["items"]} == winners
    assert loans["total"] == 3
    assert_consistent()


def test_parallel_borrows_by_one_reader_stop_at_the_limit(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    books = [desk.book(copies=1, title=f"Book {i}") for i in range(11)]
    desk.lend(member, books[0])
    responses = _at_once([lambda b=b: desk.borrow(member, b) for b in books[1:]])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 4, 409: 6}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"loan_limit_reached"}
    me = desk.client.get(f"{API}/users/me", headers=desk.headers(member)).json()
    assert me["active_loans"] == 5
    assert sum(desk.copies(b) for b in books) == 6
    assert_consistent()


def test_same_book_borrowed_twice_at_once_gives_one_loan(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book(copies=5)
    # Fewer than MAX_ACTIVE_LOANS, so the reader's own racing requests leave it slots.
    responses = _at_once([lambda: desk.borrow(member, book) for _ in range(4)])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 3}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_borrowed"}
    assert desk.copies(book) == 4
    assert_consistent()


def test_borrow_return_reserve_storm_keeps_every_counter(
    desk: Desk, admin: Account, assert_consistent: Callable[[], None]
) -> None:
    readers = _accounts(desk.client, admin, 6)
    books = [desk.book(copies=c, title=f"Storm {c}") for c in (1, 2)]
    rng = random.Random(7)
    plans = [[rng.choice(books) for _ in range(5)] for _ in readers]

    def storm(reader: Account, plan: list[str]) -> list[int]:
        seen = []
        for book in plan:
            borrowed = desk.borrow(reader, book)
            seen.append(borrowed.status_code)
            if borrowed.status_code == 201:
                seen.append(desk.give_back(reader, book).status_code)
            elif borrowed.json()["code"] == "no_copies_available":
                seen.append(desk.reserve(reader, book).status_code)
        return seen

    results = _at_once([lambda r=r, p=p: storm(r, p) for r, p in zip(readers, plans, strict=True)])
    assert 500 not in {code for seen in results for code in seen}
    assert_consistent()
    # Whoever got a copy held collects it and gives it back; the queue drains to the shelf.
    lib = desk.headers(desk.librarian)
    for _ in range(20):
        open_holds = [
            r
            for r in desk.client.get(
                f"{API}/reservations", params={"page_size": 100}, headers=lib
            ).json()["items"]
            if r["status"] in ("waiting", "ready")
        ]
        if not open_holds:
            break
        for hold in open_holds:
            if hold["status"] == "ready":
                reader = next(r for r in readers if r.id == hold["user_id"])
                assert desk.borrow(reader, hold["book_id"]).status_code == 201
                assert desk.give_back(reader, hold["book_id"]).status_code == 200
    assert not open_holds
    assert [desk.copies(b) for b in books] == [1, 2]
    assert_consistent()
