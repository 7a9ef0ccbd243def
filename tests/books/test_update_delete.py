"""PATCH and DELETE /books/{id}: partial updates, copy counters, files and reservations."""

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from library_api.config import Settings
from tests.books.conftest import book_payload, isbn10, isbn13
from tests.conftest import Account

BOOKS = "/api/v1/books"
MakeBook = Callable[..., dict[str, Any]]


def _set(raw_db: Any, book: dict[str, Any], **fields: Any) -> None:
    raw_db.books.update_one({"_id": ObjectId(book["id"])}, {"$set": fields})


def _patch(client: TestClient, who: Account, book: dict[str, Any], body: Any) -> Any:
    return client.patch(f"{BOOKS}/{book['id']}", json=body, headers=who.headers)


def test_patch_changes_only_the_given_fields(
    client: TestClient, librarian: Account, make_book: MakeBook
) -> None:
    book = make_book(
        title="Walden",
        authors=["Henry David Thoreau"],
        published_date="1854-08-09",
        genres=["Essay"],
        description="Life in the woods.",
        publisher="Ticknor and Fields",
        language="en",
        page_count=352,
        total_copies=2,
    )
    clock.advance(timedelta(minutes=5))
    response = _patch(client, librarian, book, {"description": None, "page_count": 300})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed == {
        **book,
        "description": None,
        "page_count": 300,
        "updated_at": changed["updated_at"],
    }
    assert changed["updated_at"] > book["updated_at"]
    assert changed["created_at"] == book["created_at"]
    assert client.get(f"{BOOKS}/{book['id']}", headers=librarian.headers).json() == changed


def test_patch_every_field(client: TestClient, librarian: Account, make_book: MakeBook) -> None:
    book = make_book()
    body = {
        "title": " New title ",
        "authors": ["A One", "B Two"],
        "isbn": isbn10(77),
        "published_date": "2001-02-03",
        "genres": ["X", "y"],
        "description": "D",
        "publisher": "P",
        "language": "fr",
        "page_count": 12,
        "total_copies": 4,
    }
    changed = _patch(client, librarian, book, body).json()
    assert {k: changed[k] for k in body} == {
        **body,
        "title": "New title",
        "isbn": isbn13(77),
    }
    assert (changed["available_copies"], changed["status"]) == (4, "available")


def test_empty_patch_changes_nothing(
    client: TestClient, librarian: Account, make_book: MakeBook
) -> None:
    book = make_book()
    response = _patch(client, librarian, book, {})
    assert response.status_code == 200
    assert response.json() == book


@pytest.mark.parametrize(
    "body",
    [
        {"title": None},
        {"title": " "},
        {"authors": None},
        {"authors": []},
        {"isbn": None},
        {"genres": None},
        {"total_copies": None},
        {"total_copies": -1},
        {"page_count": -5},
    ],
)
def test_patch_validation(
    client: TestClient, librarian: Account, make_book: MakeBook, body: dict[str, Any]
) -> None:
    book = make_book()
    response = _patch(client, librarian, book, body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_patch_isbn_is_revalidated_and_unique(
    client: TestClient, librarian: Account, make_book: MakeBook
) -> None:
    first = make_book(isbn=isbn13(300))
    second = make_book(isbn=isbn13(301))
    bad = _patch(client, librarian, second, {"isbn": "9780140449137"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_isbn"
    taken = _patch(client, librarian, second, {"isbn": isbn10(300)})
    assert taken.status_code == 409
    assert taken.json()["code"] == "isbn_taken"
    # Its own ISBN, written another way, is not taken by itself.
    same = _patch(client, librarian, first, {"isbn": isbn10(300)})
    assert same.status_code == 200
    assert same.json()["isbn"] == isbn13(300)


def test_dollar_text_is_stored_as_text(
    client: TestClient, librarian: Account, make_book: MakeBook
) -> None:
    book = make_book()
    body = {"title": "$title", "authors": ["$authors"], "description": "$isbn"}
    changed = _patch(client, librarian, book, body).json()
    assert (changed["title"], changed["authors"], changed["description"]) == (
        "$title",
        ["$authors"],
        "$isbn",
    )


def test_lowering_copies_keeps_the_counters(
    client: TestClient, librarian: Account, make_book: MakeBook, raw_db: Any
) -> None:
    book = make_book(total_copies=5)
    _set(raw_db, book, loaned_copies=2, held_copies=1, available_copies=2)

    response = _patch(client, librarian, book, {"total_copies": 3})
    assert response.status_code == 200
    assert (response.json()["total_copies"], response.json()["available_copies"]) == (3, 0)
    assert response.json()["status"] == "borrowed"

    refused = _patch(client, librarian, book, {"total_copies": 2, "title": "Not applied"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "copies_in_use"
    stored = raw_db.books.find_one({"_id": ObjectId(book["id"])})
    assert (stored["total_copies"], stored["available_copies"], stored["title"]) == (
        3,
        0,
        book["title"],
    )

    raised = _patch(client, librarian, book, {"total_copies": 10})
    assert (raised.json()["total_copies"], raised.json()["available_copies"]) == (10, 7)
    assert raised.json()["status"] == "partial"


def test_concurrent_lowering_never_goes_below_copies_out(
    client: TestClient, librarian: Account, make_book: MakeBook, raw_db: Any
) -> None:
    book = make_book(total_copies=6)
    _set(raw_db, book, loaned_copies=3, available_copies=3)

    def lower(total: int) -> int:
        return int(_patch(client, librarian, book, {"total_copies": total}).status_code)

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lower, [1, 2, 3, 4, 2, 1]))
    assert sorted(statuses) == [200, 200, 409, 409, 409, 409]
    stored = raw_db.books.find_one({"_id": ObjectId(book["id"])})
    assert stored["total_copies"] in (3, 4)
    assert stored["available_copies"] == stored["total_copies"] - 3


def test_patch_roles_and_unknown_ids(
    client: TestClient, member: Account, librarian: Account, make_book: MakeBook
) -> None:
    book = make_book()
    assert _patch(client, member, book, {"title": "x"}).status_code == 403
    assert client.patch(f"{BOOKS}/{book['id']}", json={"title": "x"}).status_code == 401
    for unknown in ("0123456789abcdef01234567", "nope"):
        response = _patch(client, librarian, {"id": unknown}, {"title": "x"})
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        response = _patch(client, librarian, {"id": unknown}, {"total_copies": 1})
        assert response.status_code == 404


def test_delete(
    client: TestClient, librarian: Account, member: Account, make_book: MakeBook
) -> None:
    book = make_book()
    assert client.delete(f"{BOOKS}/{book['id']}", headers=member.headers).status_code == 403
    assert client.delete(f"{BOOKS}/{book['id']}").status_code == 401
    response = client.delete(f"{BOOKS}/{book['id']}", headers=librarian.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"{BOOKS}/{book['id']}", headers=member.headers).status_code == 404
    again = client.delete(f"{BOOKS}/{book['id']}", headers=librarian.headers)
    assert again.status_code == 404
    assert client.delete(f"{BOOKS}/xyz", headers=librarian.headers).status_code == 404
    # Its ISBN is free again.
    payload = book_payload(isbn=book["isbn"])
    assert client.post(BOOKS, json=payload, headers=librarian.headers).status_code == 201


def test_delete_refuses_a_book_on_loan(
    client: TestClient, librarian: Account, make_book: MakeBook, raw_db: Any
) -> None:
    book = make_book(total_copies=2)
    _set(raw_db, book, loaned_copies=1, available_copies=1)
    response = client.delete(f"{BOOKS}/{book['id']}", headers=librarian.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "book_on_loan"
    assert raw_db.books.count_documents({"_id": ObjectId(book["id"])}) == 1
    _set(raw_db, book, loaned_copies=0, available_copies=2)
    assert client.delete(f"{BOOKS}/{book['id']}", headers=librarian.headers).status_code == 204


def _stored_file(folder: Path, suffix: str) -> dict[str, Any]:
    key = f"{uuid.uuid4().hex}{suffix}"
    (folder / key).write_bytes(b"content")
    return {
        "key": key,
        "filename": f"file{suffix}",
        "size": 7,
        "content_type": "application/octet-stream",
        "sha256": "0" * 64,
        "uploaded_at": clock.now(),
    }


def test_delete_removes_files_and_cancels_open_reservations(
    client: TestClient,
    librarian: Account,
    member: Account,
    make_book: MakeBook,
    raw_db: Any,
    settings: Settings,
) -> None:
    book = make_book(total_copies=1)
    other = make_book(total_copies=1)
    uploads = Path(settings.uploads_dir)
    cover, document = _stored_file(uploads, ".png"), _stored_file(uploads, ".pdf")
    _set(raw_db, book, cover=cover, document=document, held_copies=1, available_copies=0)
    shown = client.get(f"{BOOKS}/{book['id']}", headers=member.headers).json()
    assert shown["cover_url"] == f"/api/v1/books/{book['id']}/cover?v={cover['sha256'][:16]}"
    assert shown["document"]["filename"] == "file.pdf"
    assert "key" not in shown["document"]

    now = clock.now()
    book_id, user_id = ObjectId(book["id"]), ObjectId(member.id)

    def reservation(book_id: ObjectId, status: str, user_id: ObjectId) -> dict[str, Any]:
        return {
            "book_id": book_id,
            "user_id": user_id,
            "status": status,
            "open": status in ("waiting", "ready"),
            "created_at": now,
            "ready_at": None,
            "ready_until": None,
            "closed_at": None,
        }

    raw_db.reservations.insert_many(
        [
            reservation(book_id, "ready", user_id),
            reservation(book_id, "waiting", ObjectId()),
            reservation(book_id, "fulfilled", ObjectId()),
            reservation(ObjectId(other["id"]), "waiting", user_id),
        ]
    )
    clock.advance(timedelta(minutes=1))
    response = client.delete(f"{BOOKS}/{book['id']}", headers=librarian.headers)
    assert response.status_code == 204
    assert not (uploads / cover["key"]).exists()
    assert not (uploads / document["key"]).exists()

    left = {r["status"]: r for r in raw_db.reservations.find({"book_id": book_id})}
    assert set(left) == {"cancelled", "fulfilled"}
    assert raw_db.reservations.count_documents({"book_id": book_id, "status": "cancelled"}) == 2
    assert raw_db.reservations.count_documents({"book_id": book_id, "open": True}) == 0
    assert left["cancelled"]["closed_at"] > now
    assert left["fulfilled"]["closed_at"] is None
    assert raw_db.reservations.count_documents({"status": "waiting", "open": True}) == 1
