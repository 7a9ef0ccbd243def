"""POST /books and GET /books/{id}: validation, ISBN rules, roles."""

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.books.conftest import book_payload, isbn10, isbn13
from tests.conftest import Account

BOOKS = "/api/v1/books"


def test_create_returns_the_full_book(client: TestClient, librarian: Account) -> None:
    payload = book_payload(
        title="  Cien años de soledad ",
        authors=["Gabriel García Márquez"],
        isbn="978-0-06-088328-7",
        published_date="1967-05-30",
        genres=["Novel", "Magic realism"],
        description="The Buendía family.",
        publisher="Harper",
        language="es",
        page_count=417,
        total_copies=3,
    )
    response = client.post(BOOKS, json=payload, headers=librarian.headers)
    assert response.status_code == 201, response.text
    book = response.json()
    assert book == {
        "id": book["id"],
        "title": "Cien años de soledad",
        "authors": ["Gabriel García Márquez"],
        "isbn": "9780060883287",
        "published_date": "1967-05-30",
        "genres": ["Novel", "Magic realism"],
        "description": "The Buendía family.",
        "publisher": "Harper",
        "language": "es",
        "page_count": 417,
        "total_copies": 3,
        "available_copies": 3,
        "status": "available",
        "cover_url": None,
        "document": None,
        "created_at": book["created_at"],
        "updated_at": book["created_at"],
    }
    assert len(book["id"]) == 24
    fetched = client.get(f"{BOOKS}/{book['id']}", headers=librarian.headers)
    assert fetched.status_code == 200
    assert fetched.json() == book


def test_omitted_optional_fields_are_null_and_one_copy(
    client: TestClient, librarian: Account
) -> None:
    response = client.post(BOOKS, json=book_payload(), headers=librarian.headers)
    assert response.status_code == 201
    book = response.json()
    for field in ("published_date", "description", "publisher", "language", "page_count"):
        assert book[field] is None
    assert book["genres"] == []
    assert (book["total_copies"], book["available_copies"], book["status"]) == (1, 1, "available")


def test_zero_copies_is_unavailable(client: TestClient, librarian: Account) -> None:
    response = client.post(BOOKS, json=book_payload(total_copies=0), headers=librarian.headers)
    assert response.status_code == 201
    assert response.json()["status"] == "unavailable"


@pytest.mark.parametrize(
    "change",
    [
        {"title": ""},
        {"title": "   "},
        {"title": None},
        {"authors": []},
        {"authors": ["  "]},
        {"authors": ["Ok", ""]},
        {"authors": "Not a list"},
        {"total_copies": -1},
        {"page_count": 0},
        {"published_date": "1867"},
        {"genres": [""]},
    ],
)
def test_invalid_fields_are_422(
    client: TestClient, librarian: Account, change: dict[str, Any]
) -> None:
    response = client.post(BOOKS, json=book_payload(**change), headers=librarian.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("missing", ["title", "authors", "isbn"])
def test_required_fields(client: TestClient, librarian: Account, missing: str) -> None:
    payload = book_payload()
    del payload[missing]
    response = client.post(BOOKS, json=payload, headers=librarian.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "isbn",
    [
        "9780140449137",  # ISBN-13, wrong check digit
        "978-0-14-044913-7",
        "0140449133",  # ISBN-10, wrong check digit
        "0-14-044913-3",
        "978014044913",  # too short
        "97801404491366",  # too long
        "1234567890123",  # not 978/979
        "isbn",
        "",
        "9" * 100,
    ],
)
def test_bad_isbn_is_invalid_isbn(client: TestClient, librarian: Account, isbn: str) -> None:
    response = client.post(BOOKS, json=book_payload(isbn=isbn), headers=librarian.headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_isbn"
    assert isinstance(body["detail"], str)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("9780140449136", "9780140449136"),
        ("978-0-14-044913-6", "9780140449136"),
        ("978 0 14 044913 6", "9780140449136"),
        ("0140449132", "9780140449136"),  # ISBN-10 becomes ISBN-13
        ("0-14-044913-2", "9780140449136"),
        (" 0 14 044913 2 ", "9780140449136"),
        ("080442957X", "9780804429573"),
        ("080442957x", "9780804429573"),
        ("979-10-90636-07-1", "9791090636071"),
    ],
)
def test_isbn_forms_are_stored_as_13_digits(
    client: TestClient, librarian: Account, given: str, stored: str
) -> None:
    response = client.post(BOOKS, json=book_payload(isbn=given), headers=librarian.headers)
    assert response.status_code == 201, response.text
    assert response.json()["isbn"] == stored


def test_same_isbn_in_another_form_is_taken(client: TestClient, librarian: Account) -> None:
    first = client.post(BOOKS, json=book_payload(isbn=isbn13(42)), headers=librarian.headers)
    assert first.status_code == 201
    again = client.post(BOOKS, json=book_payload(isbn=isbn10(42)), headers=librarian.headers)
    assert again.status_code == 409
    assert again.json() == {
        "detail": "A book with this ISBN is already catalogued",
        "code": "isbn_taken",
    }


def test_genres_repeated_ignoring_case_are_kept_once(
    client: TestClient, librarian: Account
) -> None:
    payload = book_payload(genres=[" Poetry ", "poetry", "Epic"])
    response = client.post(BOOKS, json=payload, headers=librarian.headers)
    assert response.json()["genres"] == ["Poetry", "Epic"]


def test_blank_optional_text_becomes_null(client: TestClient, librarian: Account) -> None:
    payload = book_payload(description="  ", publisher="", language=" en ")
    book = client.post(BOOKS, json=payload, headers=librarian.headers).json()
    assert (book["description"], book["publisher"], book["language"]) == (None, None, "en")


def test_members_cannot_create(client: TestClient, member: Account) -> None:
    response = client.post(BOOKS, json=book_payload(), headers=member.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_admin_can_create(client: TestClient, admin: Account) -> None:
    assert client.post(BOOKS, json=book_payload(), headers=admin.headers).status_code == 201


def test_anonymous_gets_401(client: TestClient, make_book: Callable[..., dict[str, Any]]) -> None:
    book = make_book()
    for response in (
        client.post(BOOKS, json=book_payload()),
        client.get(f"{BOOKS}/{book['id']}"),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_member_reads_a_book(
    client: TestClient, member: Account, make_book: Callable[..., dict[str, Any]]
) -> None:
    book = make_book(title="Walden")
    response = client.get(f"{BOOKS}/{book['id']}", headers=member.headers)
    assert response.status_code == 200
    assert response.json()["title"] == "Walden"


@pytest.mark.parametrize("book_id", ["0123456789abcdef01234567", "not-an-id", "123"])
def test_unknown_or_malformed_id_is_404(client: TestClient, member: Account, book_id: str) -> None:
    response = client.get(f"{BOOKS}/{book_id}", headers=member.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_isbn_and_terms_are_stored_for_search(
    client: TestClient, make_book: Callable[..., dict[str, Any]], raw_db: Any
) -> None:
    from bson import ObjectId

    book = make_book(title="Crime and Punishment", authors=["Fyodor Dostoyevsky"], isbn=isbn13(7))
    stored = raw_db.books.find_one({"_id": ObjectId(book["id"])})
    assert stored["isbn"] == isbn13(7)
    assert stored["isbn_terms"] == [isbn13(7), isbn10(7).lower()]
    assert {"crime", "punishment", "fyodor", "dostoyevsky", isbn13(7)} <= set(
        stored["search_terms"]
    )
    assert stored["title_key"] == "crime and punishment"


def test_a_new_book_is_stored_as_beanie_reads_it(
    client: TestClient, make_book: Callable[..., dict[str, Any]], raw_db: Any, member: Account
) -> None:
    """Written through an upsert (not Beanie's insert): the same stored shape, a date as
    midnight UTC, every counter present from the start."""
    from datetime import UTC, datetime

    from bson import ObjectId

    book = make_book(isbn=isbn13(8), published_date="1866-01-01")
    stored = raw_db.books.find_one({"_id": ObjectId(book["id"])})
    assert stored["published_date"].replace(tzinfo=UTC) == datetime(1866, 1, 1, tzinfo=UTC)
    assert stored["waiting_readers"] == 0 and stored["loans_ever"] == 0
    assert stored["cover"] is None and "revision_id" not in stored and "id" not in stored
    got = client.get(f"/api/v1/books/{book['id']}", headers=member.headers).json()
    assert got["published_date"] == "1866-01-01"
