"""Serving files back: ranges at every edge, ETags, Content-Disposition, who may read."""

import hashlib
from urllib.parse import quote

import pytest

from tests.files.conftest import JPEG, PDF, Files, sized

MiB = 1 << 20
SIZE = 1000


@pytest.fixture
def document(files: Files) -> tuple[str, bytes]:
    book_id = files.book()
    content = sized(PDF, SIZE)
    assert files.put(book_id, "document", content, "manual.pdf").status_code == 200
    return book_id, content


SATISFIABLE = [
    ("bytes=0-0", 0, 0),
    ("bytes=999-999", 999, 999),
    ("bytes=0-999", 0, 999),
    ("bytes=-1", 999, 999),
    ("bytes=-10", 990, 999),
    ("bytes=-5000", 0, 999),
    ("bytes=500-", 500, 999),
    ("bytes=999-", 999, 999),
    ("bytes=990-5000", 990, 999),
    ("bytes=10-19", 10, 19),
    ("BYTES = 3 - 4", 3, 4),
]
UNSATISFIABLE = ["bytes=1000-", "bytes=1000-1005", "bytes=5000-6000", "bytes=-0"]
IGNORED = [
    "bytes=0-1,5-6",
    "bytes=0-1, 3-",
    "bytes=abc",
    "bytes=",
    "bytes=-",
    "bytes=5-1",
    "items=0-1",
    "0-1",
    "bytes=1.5-2",
]


def test_one_range_is_206_with_exactly_those_bytes(
    files: Files, document: tuple[str, bytes]
) -> None:
    book_id, content = document
    for header, first, last in SATISFIABLE:
        response = files.get(book_id, "document", Range=header)
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{SIZE}", header
        assert response.headers["content-length"] == str(last - first + 1)
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'
        assert response.content == content[first : last + 1], header


def test_an_unsatisfiable_range_is_416_with_the_size(
    files: Files, document: tuple[str, bytes]
) -> None:
    book_id, _ = document
    for header in UNSATISFIABLE:
        response = files.get(book_id, "document", Range=header)
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{SIZE}"
        assert response.json()["code"] == "range_not_satisfiable"


def test_a_malformed_or_multiple_range_is_ignored(
    files: Files, document: tuple[str, bytes]
) -> None:
    book_id, content = document
    for header in IGNORED:
        response = files.get(book_id, "document", Range=header)
        assert response.status_code == 200, header
        assert "content-range" not in response.headers
        assert response.content == content


def test_if_range_with_another_etag_gets_the_whole_file(
    files: Files, document: tuple[str, bytes]
) -> None:
    book_id, content = document
    current = files.get(book_id, "document").headers["etag"]
    stale = files.get(book_id, "document", Range="bytes=0-9", **{"If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.content == content
    fresh = files.get(book_id, "document", Range="bytes=0-9", **{"If-Range": current})
    assert fresh.status_code == 206
    assert fresh.content == content[:10]


def test_ranges_across_chunk_boundaries_are_exact(files: Files) -> None:
    book_id = files.book()
    content = sized(PDF, MiB + 300_000)
    assert files.put(book_id, "document", content).status_code == 200
    for first, last in [(MiB - 5, MiB + 5), (1, MiB + 299_998), (262_140, 262_150)]:
        response = files.get(book_id, "document", Range=f"bytes={first}-{last}")
        assert response.status_code == 206
        assert response.content == content[first : last + 1]
    whole = files.get(book_id, "document")
    assert whole.content == content
    # A size that is an exact multiple of GridFS's 255 KiB chunks leaves no short last chunk.
    aligned = sized(PDF, 4 * 255 * 1024)
    assert files.put(book_id, "document", aligned).status_code == 200
    assert files.get(book_id, "document").content == aligned
    tail = files.get(book_id, "document", Range="bytes=-300000")
    assert tail.content == aligned[-300_000:]


@pytest.mark.parametrize("slot", ["cover", "document"])
def test_if_none_match_with_the_current_etag_is_304(files: Files, slot: str) -> None:
    book_id = files.book()
    content = sized(JPEG if slot == "cover" else PDF, 800)
    assert files.put(book_id, slot, content).status_code == 200
    etag = files.get(book_id, slot).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = files.get(book_id, slot, **{"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
    assert files.get(book_id, slot, **{"If-None-Match": '"other"'}).status_code == 200

    replacement = sized(JPEG if slot == "cover" else PDF, 900)
    assert files.put(book_id, slot, replacement).status_code == 200
    changed = files.get(book_id, slot, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.content == replacement
    assert changed.headers["etag"] != etag


NAMES = [
    ("Report (final) v2.pdf", "Report (final) v2.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\x\\y.pdf", "y.pdf"),
    ("dir/sub\\mixed.pdf", "mixed.pdf"),
    ("a\x07b\x1fc\x7f.pdf", "abc.pdf"),
    ("...hidden.pdf", "hidden.pdf"),
    ("evil\u202efdp.exe", "evilfdp.exe"),
    ("n" * 300 + ".pdf", "n" * 251 + ".pdf"),
    ("n" * 300, "n" * 255),
    ("..", "document.pdf"),
    ("", "document.pdf"),
]


def test_the_clients_file_name_is_kept_sanitised(files: Files) -> None:
    book_id = files.book()
    for sent, kept in NAMES:
        response = files.put(book_id, "document", sized(PDF, 300), sent)
        assert response.status_code == 200
        assert response.json()["document"]["filename"] == kept, sent
        served = files.get(book_id, "document")
        assert served.headers["content-disposition"] == (
            f"attachment; filename=\"{kept}\"; filename*=UTF-8''{quote(kept, safe='!#$&+^`|')}"
        )


def test_a_non_ascii_name_has_an_ascii_fallback_and_the_exact_utf8_name(files: Files) -> None:
    book_id = files.book()
    # Raw UTF-8 in the part header, as browsers send it; quotes escaped in the quoted-string.
    sent = 'Résumé \\"文档\\" ü.pdf'.encode()
    response = files.put(book_id, "document", sized(PDF, 300), sent)
    assert response.json()["document"]["filename"] == 'Résumé "文档" ü.pdf'
    disposition = files.get(book_id, "document").headers["content-disposition"]
    assert disposition == (
        'attachment; filename="Resume ____ u.pdf"; '
        "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22%E6%96%87%E6%A1%A3%22%20%C3%BC.pdf"
    )


def test_documents_need_a_token_and_covers_do_not(files: Files) -> None:
    book_id = files.book()
    assert files.put(book_id, "cover", sized(JPEG, 300)).status_code == 200
    assert files.put(book_id, "document", sized(PDF, 300)).status_code == 200
    anonymous = files.client.get(f"/api/v1/books/{book_id}/document")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    as_member = files.client.get(f"/api/v1/books/{book_id}/document", headers=files.member.headers)
    assert as_member.status_code == 200
    assert as_member.headers["cache-control"] == "private, no-cache"
    assert as_member.headers["x-content-type-options"] == "nosniff"
    assert files.client.get(f"/api/v1/books/{book_id}/cover").status_code == 200


def test_a_book_without_files_answers_404(files: Files) -> None:
    book_id = files.book()
    for slot in ("cover", "document"):
        response = files.get(book_id, slot)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
