"""POST /books/import reads the multipart stream itself: size limits, and no file left behind."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api.books import importer
from library_api.config import Settings
from tests.books.conftest import isbn13
from tests.books.test_import import HEADER, IMPORT, catalogue, upload
from tests.conftest import Account
from tests.files.conftest import asgi_call, multipart

GiB = 1 << 30
PIECE = 65536


def _messages(body: bytes) -> list[dict[str, Any]]:
    return [
        {"type": "http.request", "body": body[i : i + PIECE], "more_body": True}
        for i in range(0, len(body), PIECE)
    ]


def _left_in(uploads: Path) -> list[str]:
    return sorted(p.name for p in uploads.iterdir())


@pytest.mark.parametrize(("who", "status"), [("nobody", 401), ("member", 403), ("librarian", 413)])
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    client: TestClient, request: pytest.FixtureRequest, who: str, status: int
) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": str(GiB)}
    if who != "nobody":
        headers.update(request.getfixturevalue(who).headers)
    chunk = {"type": "http.request", "body": b"\0" * PIECE, "more_body": True}
    result = asgi_call(client, "POST", IMPORT, headers, [chunk] * 8)
    assert result.status == status
    assert result.consumed == 0
    if status == 413:
        assert b'"code":"file_too_large"' in result.body


def test_max_import_bytes_is_the_largest_file_taken_while_streaming(
    librarian: Account, app_with: Callable[..., Any], raw_db: Any, settings: Settings
) -> None:
    limit = 20_000
    row = f"Walden,Henry David Thoreau,{isbn13(3001)},,,\n"
    # Blank lines are no data rows: they make the file as long as the test needs.
    exact = HEADER + row + "\n" * (limit - len(HEADER) - len(row))
    assert len(exact.encode()) == limit
    with app_with(max_import_bytes=limit) as other:
        # Content-Length declared, within the framing allowance: the stream is counted.
        response = upload(other, librarian, exact + "\n")
        assert response.status_code == 413
        assert response.json()["code"] == "file_too_large"
        assert raw_db.books.count_documents({}) == 0

        # No Content-Length at all: stopped as soon as the limit is passed.
        rows = "".join(f"Book {n},Author,{isbn13(3100 + n)},,,\n" for n in range(10_000))
        body, form = multipart((HEADER + rows).encode(), "books.csv", "text/csv")
        assert len(body) > 8 * limit
        result = asgi_call(other, "POST", IMPORT, {**librarian.headers, **form}, _messages(body))
        assert result.status == 413
        assert result.consumed <= limit + 2 * PIECE
        assert raw_db.books.count_documents({}) == 0

        response = upload(other, librarian, exact)
        assert response.status_code == 200, response.text
        assert response.json() == {"created": 1, "skipped": 0, "errors": []}
    assert _left_in(Path(settings.uploads_dir)) == []


class _Watching(dict[str, Any]):
    """A body message that notes what UPLOADS_DIR holds when the app receives it."""

    seen: list[list[str]]
    uploads: Path

    def get(self, key: str, default: Any = None) -> Any:
        if key == "body":
            self.seen.append(_left_in(self.uploads))
        return super().get(key, default)


def test_the_upload_is_spooled_under_uploads_dir_and_always_removed(
    client: TestClient, librarian: Account, settings: Settings
) -> None:
    uploads = Path(settings.uploads_dir)
    rows = "".join(f"Book {n},Author,not-an-isbn,,,\n" for n in range(3000))
    body, form = multipart((HEADER + rows).encode(), "books.csv", "text/csv")
    headers = {**librarian.headers, **form, "Content-Length": str(len(body))}
    seen: list[list[str]] = []
    messages = []
    for message in _messages(body):
        watching = _Watching(message)
        watching.seen, watching.uploads = seen, uploads
        messages.append(watching)
    messages[-1]["more_body"] = False

    result = asgi_call(client, "POST", IMPORT, headers, messages)
    assert result.status == 200, result.body
    assert b'"created":0' in result.body
    # While the body arrived it was written to one temporary file there, gone afterwards.
    assert len(messages) > 1
    [temporary] = seen[-1]
    assert temporary.startswith(".tmp-import-")
    assert all(names == [temporary] for names in seen)
    assert _left_in(uploads) == []

    # Refused whole after it was spooled.
    assert upload(client, librarian, HEADER + 'A,"B,x,,,\n').status_code == 422
    assert _left_in(uploads) == []

    # The client goes away half-way.
    result = asgi_call(client, "POST", IMPORT, headers, _messages(body[: len(body) // 2]))
    assert result.status == 400
    assert b"upload_interrupted" in result.body
    assert _left_in(uploads) == []
    assert catalogue(client, librarian) == {}


def test_more_data_rows_than_the_cap_are_refused_whole(
    client: TestClient, librarian: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_IMPORT_ROWS", 3)
    rows = [f"Book {n},Author,{isbn13(3200 + n)},,,\n" for n in range(4)]
    # Blank rows do not count.
    response = upload(client, librarian, HEADER + "\n".join(rows[:3]) + "\n\n")
    assert response.json() == {"created": 3, "skipped": 0, "errors": []}
    response = upload(client, librarian, HEADER + "".join(rows))
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert "3 data rows" in response.json()["detail"]
    assert len(catalogue(client, librarian)) == 3
