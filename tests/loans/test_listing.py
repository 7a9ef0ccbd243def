"""Reading loans: your own, all of them (librarian), one by id."""

from datetime import timedelta

from library_api import clock
from tests.conftest import Account
from tests.loans.support import API, Desk


def _ids(page: dict[str, object]) -> list[str]:
    return [str(item["id"]) for item in page["items"]]  # type: ignore[attr-defined]


def test_my_loans_newest_first_with_status_filters(
    desk: Desk, member: Account, other_member: Account
) -> None:
    old, middle, new = (desk.book(title=t) for t in ("Old", "Middle", "New"))
    first = desk.lend(member, old)
    clock.advance(timedelta(days=1))
    second = desk.lend(member, middle)
    desk.give_back(member, middle)
    clock.advance(timedelta(days=10))
    third = desk.lend(member, new)
    clock.advance(timedelta(days=4))  # the first loan is now overdue, the third is not
    headers = desk.headers(member)

    def mine(**params: object) -> dict[str, object]:
        response = desk.client.get(f"{API}/loans/me", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    everything = mine()
    assert _ids(everything) == [third["id"], second["id"], first["id"]]
    assert everything["total"] == 3
    assert _ids(mine(status="active")) == [third["id"], first["id"]]
    assert _ids(mine(status="returned")) == [second["id"]]
    overdue = mine(status="overdue")
    assert _ids(overdue) == [first["id"]]
    assert overdue["items"][0]["overdue"] is True  # type: ignore[index]
    paged = mine(page=2, page_size=2)
    assert (_ids(paged), paged["total"], paged["page"], paged["page_size"]) == (
        [first["id"]],
        3,
        2,
        2,
    )
    assert mine(page=3, page_size=2)["items"] == []
    assert (
        desk.client.get(f"{API}/loans/me", params={"status": "lost"}, headers=headers).status_code
        == 422
    )
    assert desk.client.get(f"{API}/loans/me").status_code == 401
    others = desk.client.get(f"{API}/loans/me", headers=desk.headers(other_member)).json()
    assert others["total"] == 0


def test_librarian_lists_loans_with_combined_filters(
    desk: Desk, member: Account, other_member: Account, librarian: Account
) -> None:
    dune, emma = desk.book(copies=2, title="Dune"), desk.book(copies=2, title="Emma")
    a = desk.lend(member, dune)
    b = desk.lend(member, emma)
    c = desk.lend(other_member, dune)
    desk.give_back(member, emma)
    headers = desk.headers(librarian)

    def loans(**params: object) -> list[str]:
        response = desk.client.get(f"{API}/loans", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return _ids(response.json())

    assert set(loans()) == {a["id"], b["id"], c["id"]}
    assert set(loans(user_id=member.id)) == {a["id"], b["id"]}
    assert set(loans(book_id=dune)) == {a["id"], c["id"]}
    assert loans(user_id=member.id, book_id=dune) == [a["id"]]
    assert loans(user_id=member.id, status="returned") == [b["id"]]
    assert set(loans(status="active")) == {a["id"], c["id"]}
    assert loans(status="overdue") == []
    assert loans(user_id="0" * 24) == []
    # An id that cannot match anything simply finds nothing; an empty one does not filter.
    for malformed in ("nope", "0" * 25, member.id + "x"):
        assert loans(user_id=malformed) == []
        assert loans(book_id=malformed) == []
        assert loans(user_id=member.id, book_id=malformed, status="active") == []
    assert set(loans(user_id="", book_id=dune)) == {a["id"], c["id"]}
    forbidden = desk.client.get(f"{API}/loans", headers=desk.headers(member))
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")


def test_get_one_loan_owner_or_librarian(
    desk: Desk, member: Account, other_member: Account, librarian: Account
) -> None:
    loan = desk.lend(member, desk.book())
    url = f"{API}/loans/{loan['id']}"
    assert desk.client.get(url, headers=desk.headers(member)).json() == loan
    assert desk.client.get(url, headers=desk.headers(librarian)).json() == loan
    hidden = desk.client.get(url, headers=desk.headers(other_member))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
    for missing in ("0" * 24, "12345"):
        assert (
            desk.client.get(f"{API}/loans/{missing}", headers=desk.headers(librarian)).status_code
            == 404
        )
    assert desk.client.get(url).status_code == 401
