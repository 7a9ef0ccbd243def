"""What GET /stats asks the database: counts on indexed filters, no pass over every loan."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.commands import recorded
from tests.conftest import Account

WATCHED = {"books", "loans", "users", "reservations"}


@pytest.fixture
def watched(app_with: Callable[..., Any], librarian: Account) -> Iterator[TestClient]:
    """An app whose database client was created after the recorder was registered."""
    with app_with() as other:
        yield other


def _count_filter(command: dict[str, Any]) -> dict[str, Any]:
    """The filter of a count_documents (PyMongo sends it as $match, then $group)."""
    first, second = command["pipeline"]
    assert set(second) == {"$group"}
    match: dict[str, Any] = first["$match"]
    return match


def test_counts_use_indexed_filters_and_the_ranking_reads_ten_books(
    watched: TestClient, librarian: Account
) -> None:
    response, all_sent = recorded(lambda: watched.get("/api/v1/stats", headers=librarian.headers))
    assert response.status_code == 200, response.text
    on_watched = [(s.collection, s.name, s.command) for s in all_sent if s.collection in WATCHED]
    # The token check reads the user by id; the rest is the figures.
    figures = [c for c in on_watched if set(c[2].get("filter", {})) != {"_id"}]
    sent = sorted(figures, key=lambda c: (c[0], c[1]))
    assert [(target, name) for target, name, _ in sent] == [
        ("books", "aggregate"),
        ("books", "find"),
        ("loans", "aggregate"),
        ("loans", "aggregate"),
        ("reservations", "aggregate"),
        ("users", "aggregate"),
    ]
    stages = {stage for _, _, c in sent for step in c.get("pipeline", []) for stage in step}
    assert not stages & {"$facet", "$lookup"}

    catalogue, ranking, *loans, reservations, users = (c for _, _, c in sent)
    assert [list(step) for step in catalogue["pipeline"]] == [["$group"]]
    assert ranking["filter"] == {"loans_ever": {"$gt": 0}}
    assert ranking["sort"] == {"loans_ever": -1, "title": 1, "_id": 1}
    assert ranking["limit"] == 10
    # Every count filter starts with the first key of an index (loans by_status_due,
    # reservations ready_expiry, users role_active).
    loan_filters = sorted((_count_filter(c) for c in loans), key=len)
    assert loan_filters[0] == {"status": "active"}
    assert set(loan_filters[1]) == {"status", "due_at"}
    assert loan_filters[1]["status"] == "active"
    assert set(loan_filters[1]["due_at"]) == {"$lt"}
    assert _count_filter(reservations) == {"status": "waiting"}
    assert _count_filter(users) == {"role": "member", "is_active": True}
