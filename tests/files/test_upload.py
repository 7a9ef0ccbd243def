"""Uploading covers and documents: judged by content, size-checked while streaming, atomic."""

import hashlib
import itertools
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.files.conftest import JPEG, PDF, PNG, WEBP, Files, form_field, multipart, sized

GiB = 1 << 30
MiB = 1 << 20


def test_covers_are_stored_and_served_back_byte_for_byte(files: Files) -> None:
    book_id = files.book()
    for head, content_type in [(JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")]:
        content = sized(head, 5000)
        response = files.put(book_id, "cover", content, "photo.bin", "application/octet-stream")
        assert response.status_code == 200, response.text
        book = response.json()
        assert book["id"] == book_id
        sha = hashlib.sha256(content).hexdigest()
        assert book["cover_url"] == f"/api/v1/books/{book_id}/cover?v={sha[:16]}"
        served = files.get(book_id, "cover")
        assert served.status_code == 200
        assert served.content == content
        assert served.headers["content-type"] == content_type
        assert served.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'
        assert served.headers["cache-control"] == "public, max-age=3600"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "content-disposition" not in served.headers


def test_document_round_trip_is_byte_exact_across_batches(files: Files) -> None:
    book_id = files.book()
    content = sized(PDF, MiB + MiB // 2 + 12345)
    response = files.put(book_id, "document", content, "Big Manual.pdf", "application/pdf")
    assert response.status_code == 200, response.text
    document = response.json()["document"]
    assert document["filename"] == "Big Manual.pdf"
    assert document["size"] == len(content)
    assert document["content_type"] == "application/pdf"
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["uploaded_at"]
    served = files.get(book_id, "document")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["content-length"] == str(len(content))
    assert served.headers["accept-ranges"] == "bytes"
    assert hashlib.sha256(served.content).digest() == hashlib.sha256(content).digest()
    assert (
        files.client.get(f"/api/v1/books/{book_id}", headers=files.librarian.headers).json()[
            "document"
        ]
        == document
    )


def test_a_stream_of_small_messages_is_stored_in_order(files: Files) -> None:
    # Uneven messages, and more 1 MiB batches than the writer keeps in flight at once.
    book_id = files.book()
    content = sized(PDF, 7 * MiB + 4321)
    body, form = multipart(content, "streamed.pdf")
    headers = {**files.librarian.headers, **form, "Content-Length": str(len(body))}
    cuts = [*range(0, len(body), 61_001), len(body)]
    messages = [
        {"type": "http.request", "body": body[a:b], "more_body": b < len(body)}
        for a, b in itertools.pairwise(cuts)
    ]
    result = files.asgi("PUT", f"/api/v1/books/{book_id}/document", headers, messages)
    assert result.status == 200, result.body[:300]
    assert json.loads(result.body)["document"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert files.get(book_id, "document").content == content


def test_stored_names_are_generated(files: Files) -> None:
    book_id = files.book()
    assert files.put(book_id, "cover", sized(PNG, 300), "../evil.png").status_code == 200
    assert files.put(book_id, "document", sized(PDF, 300), "../../x.pdf").status_code == 200
    pattern = r"[0-9a-f]{32}\.(png|pdf)" if files.backend == "local" else r"[0-9a-f]{24}"
    assert len(files.stored()) == 2
    assert all(re.fullmatch(pattern, key) for key in files.stored())


def test_a_disguised_file_is_refused_and_the_old_cover_kept(files: Files) -> None:
    book_id = files.book()
    cover = sized(JPEG, 2000)
    assert files.put(book_id, "cover", cover, "real.jpg", "image/jpeg").status_code == 200
    before = files.stored()
    html = b"<!DOCTYPE html><html><script>alert(1)</script></html>"
    response = files.put(book_id, "cover", html, "cover.jpg", "image/jpeg")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert files.stored() == before
    assert files.get(book_id, "cover").content == cover


def test_wrong_or_empty_content_is_415_and_leaves_nothing(files: Files) -> None:
    book_id = files.book()
    cases = [
        ("cover", b""),
        ("document", b""),
        ("cover", sized(PDF, 500)),
        ("document", sized(JPEG, 500)),
        ("document", b" %PDF-1.7 (the signature must come first)"),
        ("cover", b"RIFF\x24\x00\x00\x00WAVEfmt "),
        ("cover", b"\xff\xd8"),
    ]
    for slot, content in cases:
        response = files.put(book_id, slot, content, f"x.{slot}", "application/pdf")
        assert response.status_code == 415, (slot, content[:20])
        assert response.json()["code"] == "unsupported_media_type"
    assert files.stored() == set()


def test_the_limit_itself_passes_and_one_byte_more_is_413(
    files_with: Callable[..., Any],
) -> None:
    with files_with(max_cover_bytes=1500, max_document_bytes=2500) as files:
        book_id = files.book()
        for slot, head, limit in [("cover", JPEG, 1500), ("document", PDF, 2500)]:
            exact = sized(head, limit)
            assert files.put(book_id, slot, exact).status_code == 200
            response = files.put(book_id, slot, sized(head, limit + 1))
            assert response.status_code == 413
            assert response.json()["code"] == "file_too_large"
            assert files.get(book_id, slot).content == exact


BODY_CHUNK = {"type": "http.request", "body": b"\0" * 65536, "more_body": True}


@pytest.mark.parametrize("slot", ["cover", "document"])
@pytest.mark.parametrize(("who", "status"), [("nobody", 401), ("member", 403), ("librarian", 413)])
def test_a_huge_upload_is_refused_before_its_body_is_read(
    files: Files, slot: str, who: str, status: int
) -> None:
    book_id = files.book()
    headers = {
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Content-Length": str(GiB),
    }
    if who != "nobody":
        headers.update(getattr(files, who).headers)
    result = files.asgi("PUT", f"/api/v1/books/{book_id}/{slot}", headers, [BODY_CHUNK] * 16)
    assert result.status == status
    assert result.consumed == 0
    if status == 401:
        assert result.headers["www-authenticate"] == "Bearer"


def test_a_declared_length_just_past_the_limit_is_refused_unread(
    files_with: Callable[..., Any],
) -> None:
    limit = 100_000
    with files_with(max_document_bytes=limit) as files:
        book_id = files.book()
        headers = {**files.librarian.headers, **multipart(b"")[1]}
        # The limit plus room for the multipart framing (16 KiB), plus one byte.
        headers["Content-Length"] = str(limit + 16 * 1024 + 1)
        result = files.asgi("PUT", f"/api/v1/books/{book_id}/document", headers, [BODY_CHUNK])
        assert (result.status, result.consumed) == (413, 0)


@pytest.mark.parametrize("slot", ["cover", "document"])
def test_an_unknown_book_or_a_body_that_is_not_a_form_is_refused_unread(
    files: Files, slot: str
) -> None:
    book_id = files.book()
    form = multipart(b"")[1]
    for path, content_type, status in [
        (f"/api/v1/books/0123456789abcdef01234567/{slot}", form["Content-Type"], 404),
        (f"/api/v1/books/{book_id}/{slot}", "application/octet-stream", 415),
    ]:
        headers = {**files.librarian.headers, "Content-Type": content_type}
        result = files.asgi("PUT", path, headers, [BODY_CHUNK] * 4)
        assert (result.status, result.consumed) == (status, 0), path


def test_a_body_without_length_stops_as_soon_as_it_passes_the_limit(
    files_with: Callable[..., Any],
) -> None:
    limit = 200_000
    with files_with(max_document_bytes=limit) as files:
        book_id = files.book()
        body, form = multipart(sized(PDF, 8 * MiB))
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
        result = files.asgi(
            "PUT",
            f"/api/v1/books/{book_id}/document",
            {**files.librarian.headers, **form},
            messages,
        )
        assert result.status == 413
        assert result.consumed <= limit + 2 * 65536
        assert files.stored() == set()


@pytest.mark.parametrize(("slot", "old", "new"), [("cover", PNG, JPEG), ("document", PDF, PDF)])
def test_a_client_that_goes_away_leaves_nothing_and_the_old_file_intact(
    files: Files, slot: str, old: bytes, new: bytes
) -> None:
    book_id = files.book()
    kept = sized(old, 1000)
    assert files.put(book_id, slot, kept).status_code == 200
    body, form = multipart(sized(new, 3 * MiB))
    headers = {**files.librarian.headers, **form, "Content-Length": str(len(body))}
    sent = body[: 2 * MiB + 1000]
    messages = [
        {"type": "http.request", "body": sent[i : i + 65536], "more_body": True}
        for i in range(0, len(sent), 65536)
    ]
    result = files.asgi("PUT", f"/api/v1/books/{book_id}/{slot}", headers, messages)
    # Nobody is there to read it, but the access log says what happened.
    assert result.status == 400
    assert json.loads(result.body)["code"] == "upload_interrupted"
    assert len(files.stored()) == 1
    files.assert_consistent()
    assert files.get(book_id, slot).content == kept


def test_a_book_deleted_during_the_upload_keeps_nothing(files: Files) -> None:
    book_id = files.book()
    body, form = multipart(sized(PDF, MiB + MiB // 4))
    headers = {**files.librarian.headers, **form, "Content-Length": str(len(body))}
    half = len(body) - 100_000

    class DeleteMidway(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "body":
                files.raw_db.books.delete_many({})
            return super().get(key, default)

    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:half], "more_body": True},
        DeleteMidway(type="http.request", body=body[half:], more_body=False),
    ]
    result = files.asgi("PUT", f"/api/v1/books/{book_id}/document", headers, messages)
    assert result.status == 404
    assert files.stored() == set()


def test_concurrent_replacements_leave_exactly_the_file_the_book_points_at(files: Files) -> None:
    book_id = files.book()
    covers = [sized(JPEG, 40_000 + i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda c: files.put(book_id, "cover", c).status_code, covers))
    assert statuses == [200] * 8
    assert len(files.stored()) == 1
    files.assert_consistent()
    served = files.get(book_id, "cover").content
    assert served in covers
    stored = files.raw_db.books.find_one({})["cover"]
    assert stored["sha256"] == hashlib.sha256(served).hexdigest()


def test_replacing_and_deleting_remove_the_old_file(files: Files) -> None:
    book_id = files.book()
    assert files.put(book_id, "document", sized(PDF, 700)).status_code == 200
    first = files.stored()
    second = sized(PDF, 900)
    assert files.put(book_id, "document", second).status_code == 200
    assert len(files.stored()) == 1
    assert files.stored() != first
    assert files.get(book_id, "document").content == second

    for slot in ("document", "cover"):
        if slot == "cover":
            assert files.put(book_id, "cover", sized(WEBP, 300)).status_code == 200
        deleted = files.client.delete(
            f"/api/v1/books/{book_id}/{slot}", headers=files.librarian.headers
        )
        assert deleted.status_code == 204
        assert files.get(book_id, slot).status_code == 404
        again = files.client.delete(
            f"/api/v1/books/{book_id}/{slot}", headers=files.librarian.headers
        )
        assert again.status_code == 404
    assert files.stored() == set()
    book = files.client.get(f"/api/v1/books/{book_id}", headers=files.librarian.headers).json()
    assert book["cover_url"] is None
    assert book["document"] is None


def test_deleting_files_needs_a_librarian(files: Files) -> None:
    book_id = files.book()
    assert files.put(book_id, "cover", sized(JPEG, 300)).status_code == 200
    assert files.put(book_id, "document", sized(PDF, 300)).status_code == 200
    for slot in ("cover", "document"):
        url = f"/api/v1/books/{book_id}/{slot}"
        assert files.client.delete(url).status_code == 401
        assert files.client.delete(url, headers=files.member.headers).status_code == 403
    assert len(files.stored()) == 2


def test_deleting_the_book_removes_its_files(files: Files) -> None:
    book_id = files.book()
    assert files.put(book_id, "cover", sized(JPEG, 300)).status_code == 200
    assert files.put(book_id, "document", sized(PDF, 300)).status_code == 200
    assert len(files.stored()) == 2
    response = files.client.delete(f"/api/v1/books/{book_id}", headers=files.librarian.headers)
    assert response.status_code == 204
    assert files.stored() == set()


def test_unknown_or_malformed_book_is_404_and_stores_nothing(files: Files) -> None:
    for book_id in ("0123456789abcdef01234567", "not-an-id"):
        response = files.put(book_id, "cover", sized(JPEG, 300))
        assert response.status_code == 404
        assert files.get(book_id, "cover").status_code == 404
        assert files.get(book_id, "document").status_code == 404
    assert files.stored() == set()


def test_the_file_part_may_follow_other_fields(files: Files) -> None:
    book_id = files.book()
    content = sized(PDF, 5000)
    body, form = multipart(content, "after.pdf", before=form_field("note", "hello"))
    response = files.client.put(
        f"/api/v1/books/{book_id}/document",
        content=body,
        headers={**files.librarian.headers, **form},
    )
    assert response.status_code == 200, response.text
    assert files.get(book_id, "document").content == content


def test_bodies_that_are_not_a_usable_form(files: Files) -> None:
    book_id = files.book()
    url = f"/api/v1/books/{book_id}/document"
    auth = files.librarian.headers

    raw_pdf = files.client.put(
        url, content=sized(PDF, 300), headers={**auth, "Content-Type": "application/pdf"}
    )
    assert raw_pdf.status_code == 415
    assert raw_pdf.json()["code"] == "unsupported_media_type"

    body, form = multipart(sized(PDF, 300), field_name="attachment")
    missing = files.client.put(url, content=body, headers={**auth, **form})
    assert missing.status_code == 422
    assert missing.json()["code"] == "validation_error"
    assert missing.json()["detail"][0]["loc"] == ["body", "file"]

    body, form = multipart(sized(PDF, 300_000))
    truncated = files.client.put(url, content=body[:200_000], headers={**auth, **form})
    assert truncated.status_code == 400
    assert truncated.json()["code"] == "invalid_multipart"
    assert files.stored() == set()


def test_a_database_error_on_the_update_keeps_nothing_and_the_old_file(files: Files) -> None:
    # A unique index made for this test turns the book's update into a server-side error.
    files.raw_db.books.create_index(
        "cover.sha256",
        unique=True,
        name="test_unique_cover",
        partialFilterExpression={"cover.sha256": {"$exists": True}},
    )
    try:
        first, second = files.book(), files.book()
        shared = sized(JPEG, 3000)
        old = sized(PNG, 2000)
        assert files.put(first, "cover", shared).status_code == 200
        assert files.put(second, "cover", old).status_code == 200
        body, form = multipart(shared)
        headers = {**files.librarian.headers, **form, "Content-Length": str(len(body))}
        message = {"type": "http.request", "body": body, "more_body": False}
        result = files.asgi("PUT", f"/api/v1/books/{second}/cover", headers, [message])
        assert result.status == 500
        assert json.loads(result.body)["code"] == "internal_error"
        assert len(files.stored()) == 2
        files.assert_consistent()
        assert files.get(second, "cover").content == old
        assert files.get(first, "cover").content == shared
    finally:
        files.raw_db.books.drop_index("test_unique_cover")
