"""The shapes the catalogue sends, chosen so the embedded engine runs them in SQL.

Each must mean on any MongoDB what it replaced: `$elemMatch` of a prefix regex on an array of
words is the bare regex, `$elemMatch` of `$eq` the bare equality; the `count` command is
count_documents; the `$facet` aggregation is the sorted find and the count; an upsert with
only `$setOnInsert` is an insert the unique ISBN index guards.
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api.books import service
from library_api.books.schemas import BookSort
from tests import commands
from tests.books.conftest import isbn13
from tests.books.test_round_trips import HEADER, _commands, on_books, watched
from tests.commands import Sent
from tests.conftest import Account

__all__ = ["watched"]


@pytest.fixture
def recording() -> Iterator[list[Sent]]:
    with commands.recording() as sent:
        yield sent


def _import(client: TestClient, who: Account, rows: list[str]) -> dict[str, Any]:
    files = {"file": ("b.csv", (HEADER + "".join(rows)).encode(), "text/csv")}
    response = client.post("/api/v1/books/import", files=files, headers=who.headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_elem_match_finds_what_the_bare_regex_found(
    watched: TestClient, librarian: Account, raw_db: Any
) -> None:
    rows = [
        "Cien años de soledad,Gabriel García Márquez,9780060883287,,,1\n",
        "Garden Stories,Ann Garcia;Bo Marsh,9780141439518,,,1\n",
        "Gardens,Anne Green,9780140449136,,,1\n",
        "Ward,Ingard Bell,9780679783268,,,1\n",
    ]
    assert _import(watched, librarian, rows)["created"] == 4
    for text in ("gar", "garc mar", "gard", "978014", "0140", "an", "zzz", "ard"):
        words = text.split()
        for field in ("search_terms", "author_terms", "title_terms"):
            bare = {"$and": [{field: {"$regex": "^" + re.escape(w)}} for w in words]}
            elem = {
                "$and": [{field: {"$elemMatch": {"$regex": "^" + re.escape(w)}}} for w in words]
            }
            order = [("title_key", 1), ("_id", 1)]
            expected = [b["_id"] for b in raw_db.books.find(bare).sort(order)]
            assert [b["_id"] for b in raw_db.books.find(elem).sort(order)] == expected
            counted = raw_db.command("count", "books", query=elem)["n"]
            assert counted == raw_db.books.count_documents(bare) == len(expected)


def test_elem_match_of_a_genre_is_the_equality(
    watched: TestClient, librarian: Account, raw_db: Any
) -> None:
    rows = [
        "A,Ann,9780060883287,,Novel;poetry,1\n",
        "B,Ann,9780141439518,,Novel,1\n",
        "C,Ann,9780140449136,,,1\n",
    ]
    _import(watched, librarian, rows)
    for genre in ("novel", "poetry", "essay"):
        equal = sorted(b["_id"] for b in raw_db.books.find({"genre_keys": genre}))
        elem = {"genre_keys": {"$elemMatch": {"$eq": genre}}}
        assert sorted(b["_id"] for b in raw_db.books.find(elem)) == equal


def test_the_unfiltered_total_is_the_collection_count(
    watched: TestClient, librarian: Account
) -> None:
    rows = [f"Book {n},Ann,{isbn13(3000 + n)},,,1\n" for n in range(7)]
    _import(watched, librarian, rows)
    commands = _commands(watched, librarian, page_size=5)
    assert [name for name, _ in commands] == ["find", "count"]
    assert commands[0][1]["filter"] == {}
    assert "query" not in commands[1][1] or not commands[1][1]["query"]
    page = watched.get("/api/v1/books", params={"page_size": 5}, headers=librarian.headers)
    assert page.json()["total"] == 7
    # Past the end the total still comes from the count.
    page = watched.get(
        "/api/v1/books", params={"page": 3, "page_size": 5}, headers=librarian.headers
    ).json()
    assert (page["items"], page["total"]) == ([], 7)


def test_a_filtered_count_matches_the_page(watched: TestClient, librarian: Account) -> None:
    rows = [f"Garden {n},Ann García,{isbn13(4000 + n)},,Novel,{n % 2}\n" for n in range(9)]
    _import(watched, librarian, rows)
    params = {"q": "gard", "genre": "novel", "available": "true", "page_size": 2}
    body = watched.get("/api/v1/books", params=params, headers=librarian.headers).json()
    assert body["total"] == 4
    params["page"] = "5"
    past = watched.get("/api/v1/books", params=params, headers=librarian.headers).json()
    assert (past["items"], past["total"]) == ([], 4)


def test_the_aggregation_answers_what_the_find_and_count_answer(
    watched: TestClient, librarian: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ties in every sort key (titles, dates, one import's creation time), missing dates.
    rows = [
        f"Garden {'Tales' if n % 3 else 'Songs'},Ann García,{isbn13(7000 + n)},"
        f"{'' if n % 4 == 0 else f'19{50 + n % 2}-01-01'},Novel,{n % 2}\n"
        for n in range(11)
    ]
    _import(watched, librarian, rows)

    def answers() -> list[Any]:
        found = []
        for sort in BookSort:
            for params in ({"q": "gard"}, {"q": "gard", "available": "true"}, {"author": "garc"}):
                for page in (1, 2, 3, 4):
                    response = watched.get(
                        "/api/v1/books",
                        params={**params, "sort": sort.value, "page": page, "page_size": 3},
                        headers=librarian.headers,
                    )
                    body = response.json()
                    found.append(([b["id"] for b in body["items"]], body["total"]))
        return found

    at_once = answers()
    monkeypatch.setattr(service, "SEARCH_MATCHES_AT_ONCE", 0)
    assert answers() == at_once
    assert at_once[0][1] == 11


def test_title_pages_are_the_pages_of_the_title_and_id_sort(
    watched: TestClient, librarian: Account, raw_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles = ["Garden", "Garden", "Garden Songs", "Gardens", "Garden", "Été", "Ete", "Zoo"]
    rows = [f"{t},Ann García,{isbn13(7100 + n)},,,1\n" for n, t in enumerate(titles * 2)]
    _import(watched, librarian, rows)
    # The sorted find, not the aggregation, also for searches.
    monkeypatch.setattr(service, "SEARCH_MATCHES_AT_ONCE", 0)
    for sort, direction in ((BookSort.title_asc, 1), (BookSort.title_desc, -1)):
        for params, query in (({}, {}), ({"q": "gard"}, {"search_terms": {"$regex": "^gard"}})):
            order = [("title_key", direction), ("_id", direction)]
            expected = [str(b["_id"]) for b in raw_db.books.find(query).sort(order)]
            for size in (1, 2, 3, 5):
                for page in range(1, len(expected) // size + 3):
                    body = watched.get(
                        "/api/v1/books",
                        params={**params, "sort": sort.value, "page": page, "page_size": size},
                        headers=librarian.headers,
                    ).json()
                    start = (page - 1) * size
                    assert [b["id"] for b in body["items"]] == expected[start : start + size]
                    assert body["total"] == len(expected)


def test_creation_is_one_upsert_and_a_taken_isbn_is_409(
    watched: TestClient, librarian: Account, recording: list[Sent]
) -> None:
    isbn = isbn13(6001)
    payload = {"title": "Solaris", "authors": ["Stanisław Lem"], "isbn": f"{isbn[:3]}-{isbn[3:]}"}
    created = watched.post("/api/v1/books", json=payload, headers=librarian.headers)
    assert created.status_code == 201, created.text
    [(name, command)] = on_books(recording)
    assert name == "update"
    [update] = command["updates"]
    assert update["q"] == {"isbn": isbn} and update["upsert"] is True
    assert list(update["u"]) == ["$setOnInsert"]
    book = watched.get(f"/api/v1/books/{created.json()['id']}", headers=librarian.headers)
    assert book.json() == created.json()

    again = watched.post("/api/v1/books", json=payload, headers=librarian.headers)
    assert (again.status_code, again.json()["code"]) == (409, "isbn_taken")
    found = watched.get("/api/v1/books", params={"q": "solaris"}, headers=librarian.headers)
    assert found.json()["total"] == 1
    assert found.json()["items"][0]["title"] == "Solaris"


def test_an_import_writes_unordered_upserts(
    watched: TestClient, librarian: Account, recording: list[Sent]
) -> None:
    rows = [f"Book {n},Ann,{isbn13(5000 + n)},,,1\n" for n in range(3)]
    rows.append(rows[0])  # the same ISBN twice in one batch: created once, then skipped
    report = _import(watched, librarian, rows)
    assert (report["created"], report["skipped"], report["errors"]) == (3, 1, [])
    updates = [command for name, command in on_books(recording) if name == "update"]
    assert updates and all(command["ordered"] is False for command in updates)
    assert all(
        u["upsert"] and list(u["u"]) == ["$setOnInsert"] for c in updates for u in c["updates"]
    )
    assert not [name for name, _ in on_books(recording) if name == "insert"]
    again = _import(watched, librarian, rows)
    assert (again["created"], again["skipped"]) == (0, 4)
