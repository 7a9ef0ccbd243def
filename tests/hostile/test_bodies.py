"""Bodies a client should never send: too large, JSON only Python reads, inputs that a 422
would echo at length, absurd ranges; and the headers every answer carries."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.books.conftest import book_payload
from tests.conftest import Account
from tests.files.conftest import PDF, Files, sized

MAX_BODY = 1_048_576


def _json_post(client: TestClient, path: str, body: bytes, account: Account) -> Any:
    headers = {**account.headers, "Content-Type": "application/json"}
    return client.post(path, content=body, headers=headers)


def test_a_body_declared_over_max_body_bytes_is_refused_and_nothing_runs(
    client: TestClient, librarian: Account, raw_db: Any
) -> None:
    payload = book_payload(description="d" * (MAX_BODY + 10))
    response = client.post("/api/v1/books", json=payload, headers=librarian.headers)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert response.headers["connection"] == "close"
    assert raw_db.books.count_documents({}) == 0


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    client: TestClient, librarian: Account, raw_db: Any
) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB if it were all read
            sent.append(1)
            yield b" " * 65536

    headers = {**librarian.headers, "Content-Type": "application/json"}
    response = client.post("/api/v1/books", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert raw_db.books.count_documents({}) == 0


def test_a_body_at_the_limit_is_read(client: TestClient, librarian: Account) -> None:
    payload = book_payload(description="ok")
    body = json.dumps(payload).encode()
    padded = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(padded) == MAX_BODY
    assert _json_post(client, "/api/v1/books", padded, librarian).status_code == 201


def test_uploads_are_not_held_to_max_body_bytes(files: Files) -> None:
    book = files.book()
    assert files.put(book, "document", sized(PDF, 3 * MAX_BODY)).status_code == 200


ODD_JSON = {
    "nan": b'{"refresh_token": NaN}',
    "infinity": b'{"refresh_token": Infinity}',
    "minus-infinity": b'{"refresh_token": -Infinity}',
    "huge-number": b'{"refresh_token": 1e400}',
    "lone-surrogate": b'{"refresh_token": "\\ud800"}',
    "surrogate-key": b'{"\\udfff": "x"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "not-utf8": b'{"refresh_token": "\xff\xfe"}',
}

JSON_ROUTES = [
    ("/api/v1/auth/register", None),
    ("/api/v1/auth/refresh", None),
    ("/api/v1/books", "librarian"),
    ("/api/v1/users", "admin"),
    ("/api/v1/users/me/password", "member"),
]


@pytest.mark.parametrize("name", sorted(ODD_JSON))
@pytest.mark.parametrize(("path", "role"), JSON_ROUTES)
def test_json_that_only_python_would_read_is_a_422(
    client: TestClient,
    make_account: Callable[..., Account],
    admin: Account,
    name: str,
    path: str,
    role: str | None,
) -> None:
    account = admin if role in (None, "admin") else make_account(role)
    response = _json_post(client, path, ODD_JSON[name], account)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


def test_odd_json_in_a_patch_is_a_422_too(
    client: TestClient, member: Account, librarian: Account
) -> None:
    headers = {**member.headers, "Content-Type": "application/json"}
    response = client.patch("/api/v1/users/me", content=b'{"name": NaN}', headers=headers)
    assert response.status_code == 422


def test_a_422_shows_an_excerpt_of_the_input_not_the_input(client: TestClient) -> None:
    huge = "x" * 900_000
    response = client.post(
        "/api/v1/auth/register", json={"name": "A", "email": huge, "password": "p" * 40}
    )
    assert response.status_code == 422
    assert len(response.content) < 2000
    assert response.json()["code"] == "validation_error"
    shown = response.json()["detail"][0]["input"]
    assert shown.startswith("xxx") and len(shown) < 100


def test_a_422_of_a_non_finite_or_odd_value_still_renders(
    client: TestClient, librarian: Account
) -> None:
    # page_count must be an int: a float the JSON parser accepts still fails validation.
    payload = json.dumps(book_payload(page_count=1.5e300)).encode()
    response = _json_post(client, "/api/v1/books", payload, librarian)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    ("header", "statuses"),
    [
        ("bytes=" + "9" * 5000 + "-", {416}),
        ("bytes=0-" + "9" * 5000, {206}),
        ("bytes=-" + "9" * 5000, {206}),
        ("bytes=" + "0" * 5000 + "1-2", {206}),
    ],
)
def test_ranges_with_thousands_of_digits_are_answered(
    files: Files, header: str, statuses: set[int]
) -> None:
    book = files.book()
    assert files.put(book, "document", PDF).status_code == 200
    response = files.get(book, "document", Range=header)
    assert response.status_code in statuses, response.text


def test_every_answer_says_nosniff(client: TestClient, member: Account) -> None:
    for response in (
        client.get("/health"),
        client.get("/no/such/path"),
        client.get("/api/v1/users/me"),
        client.get("/api/v1/users/me", headers=member.headers),
        client.get("/openapi.json"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"


def test_authenticated_json_answers_are_not_stored(client: TestClient, member: Account) -> None:
    assert client.get("/api/v1/users/me", headers=member.headers).headers["cache-control"] == (
        "no-store"
    )
    assert client.get("/api/v1/books", headers=member.headers).headers["cache-control"] == (
        "no-store"
    )
    assert "cache-control" not in client.get("/health").headers


def test_a_public_cover_keeps_its_own_caching(files: Files) -> None:
    book = files.book()
    assert files.put(book, "cover", sized(b"\x89PNG\r\n\x1a\n", 100)).status_code == 200
    response = files.get(book, "cover", Authorization=files.librarian.headers["Authorization"])
    assert response.headers["cache-control"].startswith("public")
