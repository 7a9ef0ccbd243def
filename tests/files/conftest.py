"""File tests run twice: on the local folder backend and on GridFS.

`files` is a small driver around a client of the app using the backend under test; after
every test it checks the storage invariant: what is stored is exactly what books point at
(no temporary file, no orphan, no GridFS chunk without its file).
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from httpx2 import Response
from starlette.testclient import TestClient

from library_api.config import Settings
from library_api.files.gridfs_backend import GridFSStorage
from tests.books.conftest import book_payload
from tests.conftest import Account

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
BOUNDARY = "----library-test-boundary-7d1f"


def sized(head: bytes, size: int) -> bytes:
    """`head` followed by random bytes, `size` bytes in all."""
    return (head + os.urandom(max(size - len(head), 0)))[:size]


def multipart(
    content: bytes,
    filename: str | bytes = "file.bin",
    content_type: str = "application/octet-stream",
    field_name: str = "file",
    before: bytes = b"",
) -> tuple[bytes, dict[str, str]]:
    """A multipart body built by hand, so a test controls every byte of the file name."""
    raw_name = filename if isinstance(filename, bytes) else filename.encode()
    part = (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="'
        + field_name.encode()
        + b'"; filename="'
        + raw_name
        + b'"\r\n'
        + f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    body = before + part + f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form_field(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


@dataclass
class AsgiResult:
    status: int
    headers: dict[str, str]
    body: bytes
    consumed: int
    receive_calls: int
    error: Exception | None = None


@dataclass
class Files:
    client: TestClient
    backend: str
    librarian: Account
    uploads: Path
    raw_db: Any
    make_member: Callable[[], Account] | None = None
    _member: Account | None = None

    @property
    def member(self) -> Account:
        """Created on first use (accounts cost a few inserts); not with `files_with`."""
        if self._member is None:
            assert self.make_member is not None, "create accounts before starting another app"
            self._member = self.make_member()
        return self._member

    def book(self, **overrides: Any) -> str:
        response = self.client.post(
            "/api/v1/books", json=book_payload(**overrides), headers=self.librarian.headers
        )
        assert response.status_code == 201, response.text
        book_id: str = response.json()["id"]
        return book_id

    def put(
        self,
        book_id: str,
        slot: str,
        content: bytes,
        filename: str | bytes = "file.bin",
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> Response:
        body, form_headers = multipart(content, filename, content_type)
        auth = self.librarian.headers if headers is None else headers
        return self.client.put(
            f"/api/v1/books/{book_id}/{slot}", content=body, headers={**auth, **form_headers}
        )

    def get(self, book_id: str, slot: str, **headers: str) -> Response:
        auth = self.librarian.headers if slot == "document" else {}
        return self.client.get(f"/api/v1/books/{book_id}/{slot}", headers={**auth, **headers})

    def referenced(self) -> set[str]:
        keys = set()
        for book in self.raw_db.books.find({}, {"cover": 1, "document": 1}):
            for slot in ("cover", "document"):
                if book.get(slot):
                    keys.add(book[slot]["key"])
        return keys

    def stored(self) -> set[str]:
        """Every file the backend holds, whole or partial."""
        on_disk = {p.name for p in self.uploads.iterdir()}
        if self.backend == "local":
            return on_disk
        assert on_disk == set(), f"the GridFS backend wrote to UPLOADS_DIR: {on_disk}"
        files = {str(f["_id"]) for f in self.raw_db["files.files"].find({}, {"_id": 1})}
        chunks = {str(c["files_id"]) for c in self.raw_db["files.chunks"].find({}, {"files_id": 1})}
        return files | {f"orphan-chunks-of-{c}" for c in chunks - files}

    def assert_consistent(self) -> None:
        assert self.stored() == self.referenced()

    def asgi(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        messages: list[dict[str, Any]],
    ) -> AsgiResult:
        """Drive the app directly with these `receive` messages (then `http.disconnect`)."""
        return asgi_call(self.client, method, path, headers, messages)


def asgi_call(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    messages: list[dict[str, Any]],
) -> AsgiResult:
    pending = list(messages)
    sent: list[dict[str, Any]] = []
    counts = {"bytes": 0, "calls": 0}

    async def receive() -> dict[str, Any]:
        counts["calls"] += 1
        if pending:
            message = pending.pop(0)
            counts["bytes"] += len(message.get("body", b""))
            return message
        await anyio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    error: Exception | None = None
    try:
        client.portal.call(client.app, scope, receive, send)  # type: ignore[union-attr, arg-type]
    except Exception as exc:  # the app answered 500, then re-raised for the server to log
        error = exc
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return AsgiResult(
        status=start["status"],
        headers={k.decode(): v.decode() for k, v in start["headers"]},
        body=body,
        consumed=counts["bytes"],
        receive_calls=counts["calls"],
        error=error,
    )


@pytest.fixture(params=["local", "gridfs"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def files_with(
    backend: str,
    librarian: Account,
    app_with: Callable[..., Any],
    raw_db: Any,
    settings: Settings,
) -> Callable[..., Any]:
    """Another app on the backend under test with other settings (e.g. small limits)."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[Files]:
        with app_with(storage_backend=backend, **overrides) as other:
            files = Files(other, backend, librarian, Path(settings.uploads_dir), raw_db)
            yield files
            files.assert_consistent()

    return start


@pytest.fixture
def files(
    backend: str,
    client: TestClient,
    librarian: Account,
    make_account: Callable[..., Account],
    raw_db: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Files]:
    """The session's app on the backend under test.

    For GridFS the running app's storage is swapped for a GridFS one on its own database
    (starting another app costs about a second per test); `files_with` and
    test_backend_choice.py go through `STORAGE_BACKEND=gridfs` itself.
    """
    if backend == "gridfs":
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        monkeypatch.setattr(runtime, "storage", GridFSStorage(runtime.database.db))
    files = Files(
        client, backend, librarian, Path(settings.uploads_dir), raw_db, lambda: make_account()
    )
    yield files
    files.assert_consistent()
