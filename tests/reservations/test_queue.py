"""Placing, listing and cancelling reservations; the queue and its positions."""

from collections.abc import Callable
from datetime import datetime, timedelta

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


def test_reserve_a_book_with_no_copy_on_the_shelf(
    desk: Desk, member: Account, other_member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book(copies=1)
    desk.lend(other_member, book)
    before = clock.now()
    response = desk.reserve(member, book)
    assert response.status_code == 201, response.text
    reservation = response.json()
    assert set(reservation) == {
        "id", "book_id", "user_id", "status", "position", "created_at", "ready_until"
    }  # fmt: skip
    assert reservation["book_id"] == book
    assert reservation["user_id"] == member.id
    assert reservation["status"] == "waiting"
    assert reservation["position"] == 1
    assert reservation["ready_until"] is None
    assert abs(datetime.fromisoformat(reservation["created_at"]) - before) < timedelta(seconds=5)
    assert desk.my_reservations(member) == [reservation]
    assert_consistent()


def test_reserve_refusals(desk: Desk, member: Account, other_member: Account) -> None:
    book = desk.book(copies=1)
    on_shelf = desk.reserve(member, book)
    assert (on_shelf.status_code, on_shelf.json()["code"]) == (409, "copies_available")
    desk.lend(member, book)
    mine = desk.reserve(member, book)
    assert (mine.status_code, mine.json()["code"]) == (409, "already_borrowed")
    desk.hold(other_member, book)
    twice = desk.reserve(other_member, book)
    assert (twice.status_code, twice.json()["code"]) == (409, "already_reserved")
    for missing in ("0" * 24, "bad-id"):
        assert desk.reserve(member, missing).status_code == 404
    assert desk.client.post(f"{API}/books/{book}/reservations").status_code == 401
    # A book with no copies at all can still be reserved.
    assert desk.reserve(member, desk.book(copies=0)).status_code == 201


def test_positions_follow_the_queue_and_renumber(
    desk: Desk, make_account: Callable[..., Account], assert_consistent: Callable[[], None]
) -> None:
    holder, *queue = (make_account("member") for _ in range(4))
    book = desk.book(copies=1)
    desk.lend(holder, book)
    placed = []
    for reader in queue:
        placed.append(desk.hold(reader, book))
        clock.advance(timedelta(seconds=1))
    assert [r["position"] for r in placed] == [1, 2, 3]
    assert [desk.reservation(r, book)["position"] for r in queue] == [1, 2, 3]
    first = placed[0]
    response = desk.client.delete(
        f"{API}/reservations/{first['id']}", headers=desk.headers(queue[0])
    )
    assert response.status_code == 204
    cancelled = desk.reservation(queue[0], book)
    assert (cancelled["status"], cancelled["position"]) == ("cancelled", None)
    assert [desk.reservation(r, book)["position"] for r in queue[1:]] == [1, 2]
    # The cancelled reader may join again, at the back.
    assert desk.hold(queue[0], book)["position"] == 3
    assert_consistent()


def test_my_reservations_newest_first_and_filtered(
    desk: Desk, member: Account, other_member: Account
) -> None:
    first, second = desk.book(copies=0, title="First"), desk.book(copies=0, title="Second")
    older = desk.hold(member, first)
    clock.advance(timedelta(minutes=1))
    newer = desk.hold(member, second)
    desk.hold(other_member, first)
    headers = desk.headers(member)
    page = desk.client.get(f"{API}/reservations/me", headers=headers).json()
    assert [r["id"] for r in page["items"]] == [newer["id"], older["id"]]
    assert (page["total"], page["page"], page["page_size"]) == (2, 1, 20)
    desk.client.delete(f"{API}/reservations/{older['id']}", headers=headers)
    waiting = desk.client.get(
        f"{API}/reservations/me", params={"status": "waiting"}, headers=headers
    ).json()
    assert [r["id"] for r in waiting["items"]] == [newer["id"]]
    paged = desk.client.get(
        f"{API}/reservations/me", params={"page": 2, "page_size": 1}, headers=headers
    ).json()
    assert [r["id"] for r in paged["items"]] == [older["id"]]
    assert desk.client.get(f"{API}/reservations/me").status_code == 401


def test_librarian_lists_reservations_with_filters(
    desk: Desk, member: Account, other_member: Account, librarian: Account
) -> None:
    first, second = desk.book(copies=0, title="First"), desk.book(copies=0, title="Second")
    a = desk.hold(member, first)
    b = desk.hold(other_member, first)
    c = desk.hold(member, second)
    desk.client.delete(f"{API}/reservations/{c['id']}", headers=desk.headers(member))
    headers = desk.headers(librarian)

    def listed(**params: object) -> list[tuple[str, int | None]]:
        response = desk.client.get(f"{API}/reservations", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [(r["id"], r["position"]) for r in response.json()["items"]]

    assert {i for i, _ in listed()} == {a["id"], b["id"], c["id"]}
    assert sorted(listed(book_id=first)) == sorted([(a["id"], 1), (b["id"], 2)])
    assert listed(status="cancelled") == [(c["id"], None)]
    assert listed(book_id=first, status="cancelled") == []
    assert listed(user_id=other_member.id) == [(b["id"], 2)]
    # An id that cannot match anything simply finds nothing; an empty one does not filter.
    for malformed in ("x", "0" * 25, first + "0"):
        assert listed(book_id=malformed) == []
        assert listed(user_id=malformed) == []
        assert listed(book_id=first, user_id=malformed) == []
    assert listed(book_id="", user_id=other_member.id) == [(b["id"], 2)]
    assert (
        desk.client.get(
            f"{API}/reservations", params={"status": "lost"}, headers=headers
        ).status_code
        == 422
    )
    forbidden = desk.client.get(f"{API}/reservations", headers=desk.headers(member))
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")


def test_cancel_owner_librarian_and_others(
    desk: Desk, member: Account, other_member: Account, librarian: Account
) -> None:
    book = desk.book(copies=0)
    mine = desk.hold(member, book)
    url = f"{API}/reservations/{mine['id']}"
    stranger = desk.client.delete(url, headers=desk.headers(other_member))
    assert (stranger.status_code, stranger.json()["code"]) == (404, "not_found")
    assert desk.client.delete(url).status_code == 401
    assert desk.client.delete(url, headers=desk.headers(member)).status_code == 204
    again = desk.client.delete(url, headers=desk.headers(member))
    assert (again.status_code, again.json()["code"]) == (409, "reservation_closed")
    theirs = desk.hold(other_member, book)
    by_desk = desk.client.delete(
        f"{API}/reservations/{theirs['id']}", headers=desk.headers(librarian)
    )
    assert by_desk.status_code == 204
    assert desk.reservation(other_member, book)["status"] == "cancelled"
    for missing in ("0" * 24, "nope"):
        assert (
            desk.client.delete(
                f"{API}/reservations/{missing}", headers=desk.headers(librarian)
            ).status_code
            == 404
        )
