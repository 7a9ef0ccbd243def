"""What a search sends to the database: one find (prefix regexes) and at most one `count`."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import monitoring
from starlette.testclient import TestClient

from tests.books.conftest import isbn13
from tests.conftest import Account

HEADER = "title,authors,isbn,published_date,genres,total_copies\n"


class _Recorder(monitoring.CommandListener):
    """Keeps the commands sent on `books` while recording; PyMongo listeners cannot be removed."""

    def __init__(self) -> None:
        self.recording = False
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording and event.command.get(event.command_name) == "books":
            with self._lock:
                self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_recorder = _Recorder()
monitoring.register(_recorder)


@pytest.fixture
def watched(app_with: Callable[..., Any], librarian: Account) -> Iterator[TestClient]:
    """An app whose database client was created after the recorder was registered.

    Beanie's binding is process-wide: while it runs, every request goes through it (the
    librarian is made first, through the main app).
    """
    with app_with() as other:
        yield other


def _commands(client: TestClient, who: Account, **params: Any) -> list[tuple[str, dict[str, Any]]]:
    _recorder.commands.clear()
    _recorder.recording = True
    try:
        response = client.get("/api/v1/books", params=params, headers=who.headers)
    finally:
        _recorder.recording = False
    assert response.status_code == 200
    return list(_recorder.commands)


def test_one_find_and_at_most_one_count(watched: TestClient, librarian: Account) -> None:
    rows = "".join(f"Garden {n},Ann García,{isbn13(2000 + n)},,,1\n" for n in range(12))
    files = {"file": ("b.csv", (HEADER + rows).encode(), "text/csv")}
    report = watched.post("/api/v1/books/import", files=files, headers=librarian.headers).json()
    assert report["created"] == 12

    full_page = _commands(watched, librarian, q="garden GARC", page_size=5)
    assert [name for name, _ in full_page] == ["find", "count"]
    find = full_page[0][1]
    assert find["filter"] == {
        "$and": [
            {"search_terms": {"$elemMatch": {"$regex": "^garden"}}},
            {"search_terms": {"$elemMatch": {"$regex": "^garc"}}},
        ]
    }
    assert full_page[1][1]["query"] == find["filter"]
    assert find["sort"] == {"title_key": 1, "_id": 1}
    assert (find.get("skip", 0), find["limit"]) == (0, 5)

    # The last page, when short, tells the total without counting.
    assert [n for n, _ in _commands(watched, librarian, q="gard", page=3, page_size=5)] == ["find"]
    assert [n for n, _ in _commands(watched, librarian, q="nothing")] == ["find"]
    # Past the end, only a count can tell the total.
    past = _commands(watched, librarian, q="gard", page=9, page_size=5)
    assert [n for n, _ in past] == ["find", "count"]
    assert (past[0][1]["skip"], past[1][1]["query"]) == (40, past[0][1]["filter"])
    # A text with no word at all needs no database work.
    assert _commands(watched, librarian, q="*** ???") == []


def test_filters_are_indexed_prefixes(watched: TestClient, librarian: Account) -> None:
    [(name, find)] = _commands(
        watched, librarian, title="Cien años", author="márquez", genre=" Novel ", available="true"
    )
    assert name == "find"
    assert find["filter"] == {
        "$and": [
            {"title_terms": {"$elemMatch": {"$regex": "^cien"}}},
            {"title_terms": {"$elemMatch": {"$regex": "^anos"}}},
            {"author_terms": {"$elemMatch": {"$regex": "^marquez"}}},
            {"genre_keys": {"$elemMatch": {"$eq": "novel"}}},
            {"available_copies": {"$gt": 0}},
        ]
    }
    [(_, isbn)] = _commands(watched, librarian, q="978-0-06 .*")
    assert isbn["filter"] == {"$and": [{"search_terms": {"$elemMatch": {"$regex": "^978006"}}}]}
