"""What a search sends to the database: one aggregation (prefix regexes), or, when it matches
more books than that reads at once, one find and at most one `count`."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api.books import service
from tests.books.conftest import isbn13
from tests.commands import Sent, recorded
from tests.conftest import Account

HEADER = "title,authors,isbn,published_date,genres,total_copies\n"


@pytest.fixture
def watched(app_with: Callable[..., Any], librarian: Account) -> Iterator[TestClient]:
    """An app whose database client was created after the recorder was registered.

    Beanie's binding is process-wide: while it runs, every request goes through it (the
    librarian is made first, through the main app).
    """
    with app_with() as other:
        yield other


def _commands(client: TestClient, who: Account, **params: Any) -> list[tuple[str, dict[str, Any]]]:
    response, sent = recorded(
        lambda: client.get("/api/v1/books", params=params, headers=who.headers)
    )
    assert response.status_code == 200
    return on_books(sent)


def on_books(sent: list[Sent]) -> list[tuple[str, dict[str, Any]]]:
    """(command, the command itself) of those sent on `books`."""
    return [(s.name, s.command) for s in sent if s.collection == "books"]


def _pipeline(query: dict[str, Any], window: list[dict[str, Any]]) -> list[dict[str, Any]]:
    projection = {"search_terms": 0, "title_terms": 0, "author_terms": 0, "isbn_terms": 0}
    return [
        {"$match": query},
        {"$limit": service.SEARCH_MATCHES_AT_ONCE + 1},
        {
            "$facet": {
                "page": [{"$sort": {"title_key": 1, "_id": 1}}, *window, {"$project": projection}],
                "total": [{"$count": "n"}],
            }
        },
    ]


def test_one_aggregation_or_a_find_and_at_most_one_count(
    watched: TestClient, librarian: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"Garden {n},Ann García,{isbn13(2000 + n)},,,1\n" for n in range(12))
    files = {"file": ("b.csv", (HEADER + rows).encode(), "text/csv")}
    report = watched.post("/api/v1/books/import", files=files, headers=librarian.headers).json()
    assert report["created"] == 12

    garden = {
        "$and": [
            {"search_terms": {"$elemMatch": {"$regex": "^garden"}}},
            {"search_terms": {"$elemMatch": {"$regex": "^garc"}}},
        ]
    }
    [(name, command)] = _commands(watched, librarian, q="garden GARC", page_size=5)
    assert name == "aggregate"
    assert command["pipeline"] == _pipeline(garden, [{"$limit": 5}])
    [(_, command)] = _commands(watched, librarian, q="garden GARC", page=3, page_size=5)
    assert command["pipeline"] == _pipeline(garden, [{"$skip": 10}, {"$limit": 5}])
    assert [n for n, _ in _commands(watched, librarian, q="nothing")] == ["aggregate"]
    # A text with no word at all needs no database work.
    assert _commands(watched, librarian, q="*** ???") == []

    # More matches than one aggregation reads: a sorted find, and a count for a full page.
    monkeypatch.setattr(service, "SEARCH_MATCHES_AT_ONCE", 10)
    full_page = _commands(watched, librarian, q="garden GARC", page_size=5)
    assert [name for name, _ in full_page] == ["aggregate", "find", "count"]
    find = full_page[1][1]
    assert find["filter"] == garden == full_page[2][1]["query"]
    # In title order, the title alone is the sort key; the next book shows no tie at the edge.
    assert find["sort"] == {"title_key": 1}
    assert (find.get("skip", 0), find["limit"]) == (0, 6)
    # The last page, when short, tells the total without counting.
    last = _commands(watched, librarian, q="gard", page=3, page_size=5)
    assert [n for n, _ in last] == ["aggregate", "find"]
    assert (last[1][1]["skip"], last[1][1]["limit"]) == (9, 7)
    # Past the end, only a count can tell the total.
    past = _commands(watched, librarian, q="gard", page=9, page_size=5)
    assert [n for n, _ in past] == ["aggregate", "find", "count"]
    assert (past[1][1]["skip"], past[2][1]["query"]) == (39, past[1][1]["filter"])
    # Other orders sort on their key and the id.
    [_, (_, find)] = _commands(watched, librarian, q="gard", sort="-created_at", page_size=20)
    assert find["sort"] == {"created_at": -1, "_id": -1}


def test_a_title_running_across_a_page_edge_is_sorted_by_id(
    watched: TestClient, librarian: Account
) -> None:
    rows = "".join(f"{t},Ann,{isbn13(2100 + n)},,,1\n" for n, t in enumerate("AABBBC"))
    files = {"file": ("b.csv", (HEADER + rows).encode(), "text/csv")}
    watched.post("/api/v1/books/import", files=files, headers=librarian.headers)
    clean = _commands(watched, librarian, page=1, page_size=2)
    assert [(n, c.get("sort")) for n, c in clean] == [("find", {"title_key": 1}), ("count", None)]
    across = _commands(watched, librarian, page=2, page_size=2)
    assert [(n, c.get("sort")) for n, c in across[:2]] == [
        ("find", {"title_key": 1}),
        ("find", {"title_key": 1, "_id": 1}),
    ]


def test_filters_are_indexed_prefixes(watched: TestClient, librarian: Account) -> None:
    [(name, command)] = _commands(
        watched, librarian, title="Cien años", author="márquez", genre=" Novel ", available="true"
    )
    assert name == "aggregate"
    assert command["pipeline"][0]["$match"] == {
        "$and": [
            {"title_terms": {"$elemMatch": {"$regex": "^cien"}}},
            {"title_terms": {"$elemMatch": {"$regex": "^anos"}}},
            {"author_terms": {"$elemMatch": {"$regex": "^marquez"}}},
            {"genre_keys": {"$elemMatch": {"$eq": "novel"}}},
            {"available_copies": {"$gt": 0}},
        ]
    }
    [(_, isbn)] = _commands(watched, librarian, q="978-0-06 .*")
    assert isbn["pipeline"][0]["$match"] == {
        "$and": [{"search_terms": {"$elemMatch": {"$regex": "^978006"}}}]
    }
