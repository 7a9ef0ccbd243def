"""Notifications past their use move to `notification_archive` at the scan (archive.py); their
reader sees the same through the API, and nothing is notified twice."""

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from library_api import clock
from tests.conftest import PASSWORD, Account
from tests.notifications.conftest import API, Desk

DAY = timedelta(days=1)


def _views(desk: Desk, member: Account) -> dict[str, Any]:
    """Every reading of the member's notifications the API offers."""
    headers = desk.headers(member)
    views: dict[str, Any] = {}
    for unread in (None, "true", "false"):
        params = {} if unread is None else {"unread": unread}
        for page in (1, 2, 3, 9):
            response = desk.client.get(
                f"{API}/notifications/me",
                params={"page": page, "page_size": 2, **params},
                headers=headers,
            )
            assert response.status_code == 200, response.text
            views[f"{unread} {page}"] = response.json()
    export = desk.client.get(f"{API}/users/me/export", headers=headers).json()
    views["export"] = sorted(export["notifications"], key=lambda note: str(note["_id"]))
    return views


def _read(desk: Desk, member: Account, note_id: str) -> dict[str, Any]:
    response = desk.client.post(f"{API}/notifications/{note_id}/read", headers=desk.headers(member))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _past_due(desk: Desk, member: Account, loan: dict[str, Any]) -> None:
    """The loan's due-soon and overdue notices, each from its own scan."""
    clock.advance(datetime.fromisoformat(loan["due_at"]) - clock.now() - timedelta(hours=1))
    assert desk.scan() >= 1
    clock.advance(timedelta(hours=2))
    assert desk.scan() >= 1


def _returned_late(desk: Desk, member: Account, title: str) -> None:
    """A book borrowed, past due and returned: its due-soon and overdue notices, closed."""
    book = desk.book(title)
    _past_due(desk, member, desk.borrow(member, book))
    desk.give_back(member, book)


def test_spent_notifications_move_and_their_reader_sees_the_same(
    desk: Desk, member: Account, other_member: Account, raw_db: Any
) -> None:
    returned, kept, wanted = desk.book("Returned"), desk.book("Kept"), desk.book("Wanted")
    # A hold made ready by a return, then collected.
    desk.borrow(other_member, wanted)
    desk.reserve(member, wanted)
    desk.give_back(other_member, wanted)
    desk.borrow(member, wanted)
    desk.give_back(member, wanted)
    _past_due(desk, member, desk.borrow(member, returned))
    desk.give_back(member, returned)
    _past_due(desk, member, desk.borrow(member, kept))  # still out, and overdue
    notes = desk.notifications(member)
    assert sorted(note["kind"] for note in notes) == [
        "due_soon",
        "due_soon",
        "overdue",
        "overdue",
        "reservation_ready",
    ]
    kept_notes = {note["id"] for note in notes if note["loan_id"] == _loan_of(desk, member, kept)}
    assert len(kept_notes) == 2
    # By now the hold's notice and the returned loan's are over a week old: they moved.
    assert raw_db.notification_archive.count_documents({}) == 3

    # The loan still out keeps its notices, however old: the scan looks for their keys.
    clock.advance(9 * DAY)
    assert desk.scan() == 0  # nothing notified twice
    current = {str(d["_id"]) for d in raw_db.notifications.find({"user_id": ObjectId(member.id)})}
    assert current == kept_notes

    # An archived one is still marked read, once.
    archived = next(note for note in notes if note["id"] not in kept_notes)
    first = _read(desk, member, archived["id"])
    assert first["read_at"] is not None
    assert _read(desk, member, archived["id"]) == first
    assert archived["id"] not in {n["id"] for n in desk.notifications(member, unread="true")}
    _read(desk, member, next(iter(kept_notes)))

    # Once the loan is back, its notices move too, and the reader sees the same.
    before = _views(desk, member)
    desk.give_back(member, kept)
    assert desk.scan() == 0
    assert raw_db.notifications.count_documents({"user_id": ObjectId(member.id)}) == 0
    assert raw_db.notification_archive.count_documents({}) == 5
    assert _views(desk, member) == before

    # Erasure takes the archived ones too.
    erased = desk.client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=desk.headers(member)
    )
    assert erased.status_code == 204, erased.text
    assert raw_db.notification_archive.count_documents({"user_id": ObjectId(member.id)}) == 0


def _loan_of(desk: Desk, member: Account, book: dict[str, Any]) -> str:
    response = desk.client.get(
        f"{API}/loans/me", params={"status": "active"}, headers=desk.headers(member)
    )
    [loan] = [loan for loan in response.json()["items"] if loan["book_id"] == book["id"]]
    loan_id: str = loan["id"]
    return loan_id


def test_a_move_cut_off_leaves_one_notification_seen_once(
    desk: Desk, member: Account, raw_db: Any
) -> None:
    _returned_late(desk, member, "Twice")
    # A week old, its subject closed: it stays until the mailer is done with it.
    clock.advance(7 * DAY)
    assert desk.scan() == 0
    assert raw_db.notification_archive.count_documents({}) == 0
    clock.advance(2 * DAY)
    desk.scan()
    # As a crash between the copy and the delete leaves it: in both, the current one read.
    archived = list(raw_db.notification_archive.find({"user_id": ObjectId(member.id)}))
    assert len(archived) == 2
    copy = {**archived[0], "read_at": clock.now()}
    raw_db.notifications.insert_one(copy)
    assert [n["id"] for n in desk.notifications(member, unread="true")] == [str(archived[1]["_id"])]
    page = desk.client.get(f"{API}/notifications/me", headers=desk.headers(member)).json()
    assert page["total"] == 2 and len(page["items"]) == 2
    desk.scan()
    assert raw_db.notifications.count_documents({"user_id": ObjectId(member.id)}) == 0
    stored = raw_db.notification_archive.find_one({"_id": archived[0]["_id"]})
    assert stored["read_at"] is not None


def test_an_account_erased_during_the_move_leaves_no_copy(
    desk: Desk, member: Account, raw_db: Any
) -> None:
    _returned_late(desk, member, "Gone")
    clock.advance(9 * DAY)
    # As the scan finds it when an erasure has removed the account but not yet these.
    raw_db.users.delete_one({"_id": ObjectId(member.id)})
    desk.scan()
    mine = {"user_id": ObjectId(member.id)}
    assert raw_db.notifications.count_documents(mine) == 0
    assert raw_db.notification_archive.count_documents(mine) == 0
