"""The index set per engine (db.build_indexes): every declared index on MongoDB, the search
indexes over arrays left out of the embedded database, where nothing reads them."""

from functools import partial
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from library_api.books.models import MONGODB_ONLY_INDEXES
from library_api.db import document_models
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login

SEARCH_INDEXES = set(MONGODB_ONLY_INDEXES["books"])


def _indexes(app: TestClient, collection: str) -> set[str]:
    database = app.app.state.runtime.database  # type: ignore[attr-defined]
    information = app.portal.call(database.db[collection].index_information)  # type: ignore[union-attr]
    return set(information)


def _catalogue_and_search(app: TestClient) -> None:
    """A book created, then found by each search that would read a left-out index."""
    headers = {"Authorization": f"Bearer {login(app, ADMIN_EMAIL, ADMIN_PASSWORD)['access_token']}"}
    book = {
        "title": "The Winter Garden",
        "authors": ["Ada Lindqvist"],
        "isbn": "9780306406157",
        "genres": ["Mystery"],
    }
    assert app.post("/api/v1/books", json=book, headers=headers).status_code == 201
    for query in ("q=wint gard", "author=lindq", "title=garden", "genre=mystery", "q=9780306"):
        response = app.get(f"/api/v1/books?{query}", headers=headers)
        assert response.status_code == 200, response.text
        found = response.json()
        assert [b["isbn"] for b in found["items"]] == ["9780306406157"], query
        assert found["total"] == 1, query


def test_mongodb_gets_every_declared_index(client: TestClient, raw_db: Any) -> None:
    # The suite's app reaches its database by MONGODB_URL, as it would reach MongoDB.
    for model in document_models():
        name = model.get_collection_name()
        declared = {index.document["name"] for index in getattr(model.Settings, "indexes", [])}
        assert set(raw_db[name].index_information()) == declared | {"_id_"}, name
    assert set(raw_db.books.index_information()) >= SEARCH_INDEXES


def test_the_embedded_database_leaves_the_search_indexes_out(app_with: Any, tmp_path: Path) -> None:
    embedded = {"mongodb_url": None, "embedded_db_path": str(tmp_path / "library.sqlite3")}
    with app_with(**embedded) as app:
        present = _indexes(app, "books")
        assert not present & SEARCH_INDEXES
        assert {"isbn_unique", "by_title", "top_borrowed"} <= present
        _catalogue_and_search(app)


def test_an_older_embedded_database_loses_them_at_start(app_with: Any, tmp_path: Path) -> None:
    embedded = {"mongodb_url": None, "embedded_db_path": str(tmp_path / "library.sqlite3")}
    with app_with(**embedded) as first:
        # As a database built before this change has them.
        database = first.app.state.runtime.database  # type: ignore[attr-defined]
        for name in SEARCH_INDEXES:
            field = "genre_keys" if name == "genres" else name
            create = partial(database.db.books.create_index, field, name=name)
            first.portal.call(create)  # type: ignore[union-attr]
        assert _indexes(first, "books") >= SEARCH_INDEXES
    with app_with(**embedded) as second:
        assert not _indexes(second, "books") & SEARCH_INDEXES
        _catalogue_and_search(second)
