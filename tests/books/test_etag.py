"""Conditional requests on books: a strong ETag, If-None-Match -> 304, If-Match -> 412."""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from httpx2 import Response
from starlette.testclient import TestClient

from tests.books.conftest import book_payload
from tests.conftest import Account

API = "/api/v1/books"


def _create(client: TestClient, librarian: Account, **fields: Any) -> Response:
    response = client.post(API, json=book_payload(**fields), headers=librarian.headers)
    assert response.status_code == 201, response.text
    return response


def test_every_answer_with_a_book_carries_its_etag(
    client: TestClient, librarian: Account, member: Account
) -> None:
    created = _create(client, librarian)
    etag = created.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    book = created.json()["id"]
    fetched = client.get(f"{API}/{book}", headers=member.headers)
    assert fetched.headers["etag"] == etag
    patched = client.patch(f"{API}/{book}", json={"title": "Other"}, headers=librarian.headers)
    assert patched.headers["etag"] != etag
    assert (
        client.get(f"{API}/{book}", headers=member.headers).headers["etag"]
        == (patched.headers["etag"])
    )


def test_if_none_match_with_the_current_etag_is_a_304(
    client: TestClient, librarian: Account, member: Account
) -> None:
    book = _create(client, librarian).json()["id"]
    etag = client.get(f"{API}/{book}", headers=member.headers).headers["etag"]
    cached = client.get(f"{API}/{book}", headers={**member.headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    listed = client.get(
        f"{API}/{book}", headers={**member.headers, "If-None-Match": f'"x", {etag}'}
    )
    assert listed.status_code == 304
    stale = client.get(f"{API}/{book}", headers={**member.headers, "If-None-Match": '"old"'})
    assert stale.status_code == 200


def test_the_etag_changes_when_the_counts_do(
    client: TestClient, librarian: Account, member: Account
) -> None:
    book = _create(client, librarian, total_copies=2).json()["id"]
    before = client.get(f"{API}/{book}", headers=member.headers).headers["etag"]
    assert client.post(f"{API}/{book}/borrow", json={}, headers=member.headers).status_code == 201
    after = client.get(f"{API}/{book}", headers=member.headers)
    assert after.json()["available_copies"] == 1
    assert after.headers["etag"] != before
    assert (
        client.get(f"{API}/{book}", headers={**member.headers, "If-None-Match": before})
    ).status_code == 200


def test_a_stale_if_match_changes_nothing(
    client: TestClient, librarian: Account, raw_db: Any
) -> None:
    created = _create(client, librarian)
    book, etag = created.json()["id"], created.headers["etag"]
    client.patch(f"{API}/{book}", json={"title": "First edit"}, headers=librarian.headers)
    stale = client.patch(
        f"{API}/{book}",
        json={"title": "Lost update"},
        headers={**librarian.headers, "If-Match": etag},
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert raw_db.books.find_one({})["title"] == "First edit"
    gone = client.delete(f"{API}/{book}", headers={**librarian.headers, "If-Match": etag})
    assert gone.status_code == 412
    assert raw_db.books.count_documents({}) == 1


def test_a_fresh_if_match_applies(client: TestClient, librarian: Account, raw_db: Any) -> None:
    created = _create(client, librarian)
    book, etag = created.json()["id"], created.headers["etag"]
    edited = client.patch(
        f"{API}/{book}", json={"title": "Edited"}, headers={**librarian.headers, "If-Match": etag}
    )
    assert edited.status_code == 200
    assert (
        client.delete(
            f"{API}/{book}", headers={**librarian.headers, "If-Match": edited.headers["etag"]}
        ).status_code
        == 204
    )
    assert raw_db.books.count_documents({}) == 0


def test_a_stale_if_match_racing_a_fresh_one_loses(
    client: TestClient, librarian: Account, raw_db: Any
) -> None:
    created = _create(client, librarian)
    book, etag = created.json()["id"], created.headers["etag"]
    start = threading.Barrier(8)

    def edit(n: int) -> Callable[[], Response]:
        def run() -> Response:
            start.wait()
            return client.patch(
                f"{API}/{book}",
                json={"title": f"Edit {n}"},
                headers={**librarian.headers, "If-Match": etag},
            )

        return run

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda call: call(), [edit(n) for n in range(8)]))
    statuses = Counter(a.status_code for a in answers)
    # All held the same ETag: exactly one edit applies, the others see it changed.
    assert statuses == Counter({200: 1, 412: 7}), statuses
    winner = next(a for a in answers if a.status_code == 200).json()["title"]
    assert raw_db.books.find_one({})["title"] == winner


def test_if_match_star_and_unknown_books(client: TestClient, librarian: Account) -> None:
    book = _create(client, librarian).json()["id"]
    star = client.patch(
        f"{API}/{book}", json={"title": "Any"}, headers={**librarian.headers, "If-Match": "*"}
    )
    assert star.status_code == 200
    missing = client.patch(
        f"{API}/{'0' * 24}", json={"title": "x"}, headers={**librarian.headers, "If-Match": '"a"'}
    )
    assert missing.status_code == 404


def test_an_upload_answers_with_the_books_new_etag(
    client: TestClient, librarian: Account, member: Account
) -> None:
    book = _create(client, librarian).json()["id"]
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    uploaded = client.put(
        f"{API}/{book}/cover",
        files={"file": ("c.png", png, "image/png")},
        headers=librarian.headers,
    )
    assert uploaded.status_code == 200
    assert (
        uploaded.headers["etag"]
        == client.get(f"{API}/{book}", headers=member.headers).headers["etag"]
    )
