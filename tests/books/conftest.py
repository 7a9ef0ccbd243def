"""Helpers for the catalogue tests: valid ISBNs and books created through the API."""

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import Account

_serial = itertools.count(1)


def isbn13(serial: int, prefix: str = "978") -> str:
    """A valid ISBN-13: `prefix` + 9 digits of `serial` + the computed check digit."""
    body = f"{prefix}{serial:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def isbn10(serial: int) -> str:
    body = f"{serial:09d}"
    total = sum(int(d) * (10 - i) for i, d in enumerate(body))
    check = (11 - total % 11) % 11
    return body + ("X" if check == 10 else str(check))


def book_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "title": "A Book",
        "authors": ["Some Author"],
        "isbn": isbn13(next(_serial)),
    }
    payload.update(overrides)
    return payload


@pytest.fixture
def make_book(client: TestClient, librarian: Account) -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        response = client.post(
            "/api/v1/books", json=book_payload(**overrides), headers=librarian.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return make
