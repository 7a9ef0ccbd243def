"""Returning (by book or by loan) and renewing loans."""

from collections.abc import Callable
from datetime import datetime, timedelta

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


def _due(loan: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(loan["due_at"]))


def test_return_by_book(desk: Desk, member: Account, assert_consistent: Callable[[], None]) -> None:
    book = desk.book(copies=1)
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=2))
    response = desk.give_back(member, book)
    assert response.status_code == 200, response.text
    returned = response.json()
    assert returned["id"] == loan["id"]
    assert returned["status"] == "returned"
    assert returned["overdue"] is False
    assert abs(datetime.fromisoformat(returned["returned_at"]) - clock.now()) < timedelta(seconds=5)
    assert desk.copies(book) == 1
    me = desk.client.get(f"{API}/users/me", headers=desk.headers(member)).json()
    assert me["active_loans"] == 0
    again = desk.give_back(member, book)
    assert (again.status_code, again.json()["code"]) == (409, "no_active_loan")
    # The book can be borrowed again, by the same reader too.
    desk.lend(member, book)
    assert_consistent()


def test_return_by_book_needs_your_own_loan(
    desk: Desk, member: Account, other_member: Account
) -> None:
    book = desk.book(copies=2)
    desk.lend(member, book)
    assert desk.give_back(other_member, book).json()["code"] == "no_active_loan"
    assert desk.give_back(member, "0" * 24).status_code == 404
    assert desk.copies(book) == 1


def test_overdue_loan_is_returned_and_flagged_until_then(desk: Desk, member: Account) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=20))
    shown = desk.client.get(f"{API}/loans/{loan['id']}", headers=desk.headers(member)).json()
    assert shown["overdue"] is True
    returned = desk.give_back(member, book).json()
    assert returned["overdue"] is False
    assert returned["status"] == "returned"


def test_return_by_loan_id(
    desk: Desk,
    member: Account,
    other_member: Account,
    librarian: Account,
    assert_consistent: Callable[[], None],
) -> None:
    first, second = desk.book(title="First"), desk.book(title="Second")
    mine, also_mine = desk.lend(member, first), desk.lend(member, second)
    url = f"{API}/loans/{mine['id']}/return"
    stranger = desk.client.post(url, headers=desk.headers(other_member))
    assert (stranger.status_code, stranger.json()["code"]) == (404, "not_found")
    response = desk.client.post(url, headers=desk.headers(member))
    assert response.status_code == 200
    assert response.json()["status"] == "returned"
    again = desk.client.post(url, headers=desk.headers(member))
    assert (again.status_code, again.json()["code"]) == (409, "already_returned")
    # A librarian returns a member's loan at the desk; the member's slot frees.
    by_desk = desk.client.post(
        f"{API}/loans/{also_mine['id']}/return", headers=desk.headers(librarian)
    )
    assert by_desk.status_code == 200
    me = desk.client.get(f"{API}/users/me", headers=desk.headers(member)).json()
    assert me["active_loans"] == 0
    assert desk.copies(first) == desk.copies(second) == 1
    for bad in ("0" * 24, "xyz"):
        assert (
            desk.client.post(
                f"{API}/loans/{bad}/return", headers=desk.headers(librarian)
            ).status_code
            == 404
        )
    assert_consistent()


def test_renew_moves_the_due_date_from_the_old_one(
    desk: Desk, member: Account, assert_consistent: Callable[[], None]
) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=3))
    response = desk.client.post(f"{API}/loans/{loan['id']}/renew", headers=desk.headers(member))
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["renewals"] == 1
    # Not overdue yet: LOAN_DAYS past the old due date, not past now.
    assert _due(renewed) == _due(loan) + timedelta(days=14)
    assert_consistent()


def test_librarian_renews_an_overdue_loan_from_now(
    desk: Desk, member: Account, librarian: Account
) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    clock.advance(timedelta(days=20))
    url = f"{API}/loans/{loan['id']}/renew"
    refused = desk.client.post(url, headers=desk.headers(member))
    assert (refused.status_code, refused.json()["code"]) == (409, "loan_overdue")
    response = desk.client.post(url, headers=desk.headers(librarian))
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["overdue"] is False
    # Overdue: LOAN_DAYS from now, the later of the two.
    assert abs(_due(renewed) - (clock.now() + timedelta(days=14))) < timedelta(seconds=5)


def test_renewal_limit(desk: Desk, member: Account) -> None:
    loan = desk.lend(member, desk.book())
    url = f"{API}/loans/{loan['id']}/renew"
    for expected in (1, 2):
        assert desk.client.post(url, headers=desk.headers(member)).json()["renewals"] == expected
    refused = desk.client.post(url, headers=desk.headers(member))
    assert (refused.status_code, refused.json()["code"]) == (409, "renewal_limit_reached")
    shown = desk.client.get(f"{API}/loans/{loan['id']}", headers=desk.headers(member)).json()
    assert shown["renewals"] == 2
    assert _due(shown) == _due(loan) + timedelta(days=28)


def test_max_renewals_comes_from_the_settings(
    app_with: Callable[..., object], member: Account, librarian: Account
) -> None:
    with app_with(max_renewals=0) as other:  # type: ignore[attr-defined]
        desk = Desk(other, librarian)
        loan = desk.lend(member, desk.book())
        refused = other.post(f"{API}/loans/{loan['id']}/renew", headers=desk.headers(member))
        assert refused.json()["code"] == "renewal_limit_reached"


def test_renew_refused_when_others_wait_but_not_for_your_own_reservation(
    desk: Desk, member: Account, other_member: Account
) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    url = f"{API}/loans/{loan['id']}/renew"
    desk.hold(other_member, book)
    refused = desk.client.post(url, headers=desk.headers(member))
    assert (refused.status_code, refused.json()["code"]) == (409, "reserved_by_others")
    waiting = desk.reservation(other_member, book)
    desk.client.delete(f"{API}/reservations/{waiting['id']}", headers=desk.headers(other_member))
    assert desk.client.post(url, headers=desk.headers(member)).status_code == 200


def test_renew_a_returned_loan_or_someone_elses(
    desk: Desk, member: Account, other_member: Account
) -> None:
    book = desk.book()
    loan = desk.lend(member, book)
    url = f"{API}/loans/{loan['id']}/renew"
    assert desk.client.post(url, headers=desk.headers(other_member)).status_code == 404
    desk.give_back(member, book)
    refused = desk.client.post(url, headers=desk.headers(member))
    assert (refused.status_code, refused.json()["code"]) == (409, "already_returned")
    assert (
        desk.client.post(f"{API}/loans/{'0' * 24}/renew", headers=desk.headers(member)).status_code
        == 404
    )


def test_a_renewed_loan_past_its_first_due_date_does_not_block_borrowing(
    desk: Desk, member: Account
) -> None:
    """The reader's record follows the renewal; past the new date the reader is overdue."""
    loan = desk.lend(member, desk.book())
    renewed = desk.client.post(f"{API}/loans/{loan['id']}/renew", headers=desk.headers(member))
    assert renewed.status_code == 200, renewed.text
    clock.advance(timedelta(days=20))
    assert desk.borrow(member, desk.book()).status_code == 201
    clock.advance(timedelta(days=10))
    assert desk.borrow(member, desk.book()).json()["code"] == "has_overdue_loans"
