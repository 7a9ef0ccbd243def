"""POST /books/{id}/borrow: who may borrow, what it costs the book, and every refusal."""

from collections.abc import Callable
from datetime import datetime, timedelta

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


def test_borrow_lends_a_copy_due_in_loan_days(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book(copies=2, title="Dune")
    before = clock.now()
    loan = desk.lend(member, book)
    assert loan["book_id"] == book
    assert loan["user_id"] == member.id
    assert loan["book_title"] == "Dune"
    assert loan["status"] == "active"
    assert loan["returned_at"] is None
    assert loan["renewals"] == 0
    assert loan["overdue"] is False
    borrowed = datetime.fromisoformat(loan["borrowed_at"])
    assert abs(borrowed - before) < timedelta(seconds=5)
    assert datetime.fromisoformat(loan["due_at"]) - borrowed == timedelta(days=14)
    assert desk.copies(book) == 1
    me = desk.client.get(f"{API}/users/me", headers=desk.headers(member)).json()
    assert (me["active_loans"], me["overdue_loans"]) == (1, 0)
    assert_consistent()


def test_loan_days_come_from_the_settings(app_with: Callable[..., object], member: Account) -> None:
    with app_with(loan_days=3) as other:  # type: ignore[attr-defined]
        desk = Desk(other, _librarian_for(other))
        book = desk.book()
        loan = desk.lend(member, book)
    due = datetime.fromisoformat(loan["due_at"]) - datetime.fromisoformat(loan["borrowed_at"])
    assert due == timedelta(days=3)


def _librarian_for(client: object) -> Account:
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, login

    admin = {
        "Authorization": f"Bearer {login(client, ADMIN_EMAIL, ADMIN_PASSWORD)['access_token']}"
    }  # type: ignore[arg-type]
    email = f"lib-{clock.now().timestamp()}@example.com"
    created = client.post(  # type: ignore[attr-defined]
        f"{API}/users",
        json={"name": "L", "email": email, "password": PASSWORD, "role": "librarian"},
        headers=admin,
    )
    tokens = login(client, email, PASSWORD)  # type: ignore[arg-type]
    return Account(created.json()["id"], email, PASSWORD, "librarian", tokens["access_token"], "")


def test_no_copies_available(
    desk: Desk, member: Account, other_member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book(copies=1)
    desk.lend(member, book)
    refused = desk.borrow(other_member, book)
    assert refused.status_code == 409
    assert refused.json()["code"] == "no_copies_available"
    assert desk.copies(book) == 0
    assert_consistent()


def test_a_book_with_no_copies_at_all(desk: Desk, member: Account) -> None:
    book = desk.book(copies=0)
    assert desk.borrow(member, book).json()["code"] == "no_copies_available"


def test_already_borrowed(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book(copies=3)
    desk.lend(member, book)
    refused = desk.borrow(member, book)
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_borrowed"
    assert desk.copies(book) == 2
    # The last copy gone, a second attempt still says why it really fails.
    single = desk.book(copies=1)
    desk.lend(member, single)
    assert desk.borrow(member, single).json()["code"] == "already_borrowed"
    assert_consistent()


def test_loan_limit_reached(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    books = [desk.book(copies=1, title=f"Book {i}") for i in range(6)]
    for book in books[:5]:
        desk.lend(member, book)
    refused = desk.borrow(member, books[5])
    assert refused.status_code == 409
    assert refused.json()["code"] == "loan_limit_reached"
    assert desk.copies(books[5]) == 1
    assert desk.give_back(member, books[0]).status_code == 200
    desk.lend(member, books[5])
    assert_consistent()


def test_has_overdue_loans(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    first, second = desk.book(title="First"), desk.book(title="Second")
    desk.lend(member, first)
    clock.advance(timedelta(days=14, minutes=1))
    refused = desk.borrow(member, second)
    assert refused.status_code == 409
    assert refused.json()["code"] == "has_overdue_loans"
    assert desk.copies(second) == 1
    me = desk.client.get(f"{API}/users/me", headers=desk.headers(member)).json()
    assert (me["active_loans"], me["overdue_loans"]) == (1, 1)
    desk.give_back(member, first)
    desk.lend(member, second)
    assert_consistent()


def test_due_today_is_not_overdue(desk: Desk, member: Account) -> None:
    first, second = desk.book(title="First"), desk.book(title="Second")
    desk.lend(member, first)
    clock.advance(timedelta(days=14) - timedelta(minutes=1))
    desk.lend(member, second)


def test_unknown_or_malformed_book(desk: Desk, member: Account) -> None:
    for book_id in ("0" * 24, "not-an-id"):
        response = desk.borrow(member, book_id)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert desk.client.post(f"{API}/books/{'0' * 24}/borrow").status_code == 401


def test_librarian_checks_out_for_a_member(
    desk: Desk, librarian: Account, member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book()
    response = desk.borrow(librarian, book, user_id=member.id)
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == member.id
    mine = desk.client.get(f"{API}/loans/me", headers=desk.headers(member)).json()
    assert [loan["id"] for loan in mine["items"]] == [response.json()["id"]]
    assert desk.client.get(f"{API}/loans/me", headers=desk.headers(librarian)).json()["total"] == 0
    assert_consistent()


def test_librarian_checkout_keeps_the_member_rules(
    desk: Desk, librarian: Account, member: Account
) -> None:
    first, second = desk.book(title="First"), desk.book(title="Second")
    desk.lend(member, first)
    assert desk.borrow(librarian, first, user_id=member.id).json()["code"] == "already_borrowed"
    clock.advance(timedelta(days=15))
    refused = desk.borrow(librarian, second, user_id=member.id)
    assert refused.json()["code"] == "has_overdue_loans"


def test_librarian_checkout_for_unknown_or_disabled_user(
    desk: Desk, admin: Account, librarian: Account, member: Account
) -> None:
    book = desk.book()
    for unknown in ("0" * 24, "nope", "", "0" * 25):
        missing = desk.borrow(librarian, book, user_id=unknown)
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found"), unknown
    desk.client.patch(
        f"{API}/users/{member.id}", json={"is_active": False}, headers=desk.headers(admin)
    )
    refused = desk.borrow(librarian, book, user_id=member.id)
    assert (refused.status_code, refused.json()["code"]) == (409, "account_disabled")
    assert desk.copies(book) == 1


def test_member_may_only_name_itself(desk: Desk, member: Account, other_member: Account) -> None:
    book = desk.book(copies=2)
    # Any id but its own is refused on the role, before the id is looked at.
    for other in (other_member.id, "0" * 24, "nope", ""):
        refused = desk.borrow(member, book, user_id=other)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), other
    assert desk.copies(book) == 2
    assert desk.borrow(member, book, user_id=member.id.upper()).status_code == 201
