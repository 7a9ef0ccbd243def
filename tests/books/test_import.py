"""POST /books/import: a CSV of books, reported row by row."""

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.books.conftest import isbn10, isbn13
from tests.conftest import Account

BOOKS = "/api/v1/books"
IMPORT = f"{BOOKS}/import"
HEADER = "title,authors,isbn,published_date,genres,total_copies\n"
MakeBook = Callable[..., dict[str, Any]]


def upload(client: TestClient, who: Account, content: str | bytes, name: str = "books.csv") -> Any:
    data = content.encode() if isinstance(content, str) else content
    return client.post(IMPORT, files={"file": (name, data, "text/csv")}, headers=who.headers)


def catalogue(client: TestClient, who: Account) -> dict[str, dict[str, Any]]:
    items = client.get(BOOKS, params={"page_size": 100}, headers=who.headers).json()["items"]
    return {b["isbn"]: b for b in items}


def test_import_report(client: TestClient, librarian: Account, make_book: MakeBook) -> None:
    make_book(title="Already here", isbn=isbn13(900))
    rows = [
        # 2: good, every column
        f'"War and Peace","Leo Tolstoy; Louise Maude",{isbn13(901)},1869-01-01,Novel;History,3',
        # 3: good, ISBN-10 with hyphens, empty date and copies
        f"Walden,Henry David Thoreau,{isbn10(902)[:3]}-{isbn10(902)[3:]},,,",
        # 4: already catalogued (as its ISBN-10)
        f"Another title,Someone,{isbn10(900)},,,",
        # 5: bad checksum
        "Bad ISBN,Someone,9780140449137,,,",
        # 6: blank title
        f"  ,Someone,{isbn13(903)},,,",
        # 7: no author
        f"No author, ; ,{isbn13(904)},,,",
        # 8: a date that is not YYYY-MM-DD
        f"Bad date,Someone,{isbn13(905)},1869,,",
        # 9: copies not a whole number >= 0
        f"Bad copies,Someone,{isbn13(906)},,,-2",
        # 10: a field too many
        f"Wide,Someone,{isbn13(907)},,,1,extra",
        # 11: same ISBN as row 2, earlier in this file
        f"War and Peace again,Leo Tolstoy,{isbn13(901)},,,",
        # 12: blank line, not a data row
        "",
        # 13: quoted field with a comma, a quote and a line break
        f'"The ""Quoted"", Title\nacross lines",Author,{isbn13(908)},2000-02-29,"Poetry; Epic",0',
        # 14: missing ISBN
        "No ISBN,Someone,,,,",
    ]
    response = upload(client, librarian, HEADER + "\n".join(rows) + "\n")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["skipped"]) == (3, 2)
    assert [e["row"] for e in report["errors"]] == [5, 6, 7, 8, 9, 10, 14]
    assert "ISBN" in report["errors"][0]["detail"]
    assert report["errors"][1]["detail"].startswith("title")
    assert report["errors"][2]["detail"].startswith("authors")
    assert report["errors"][3]["detail"].startswith("published_date")
    assert report["errors"][4]["detail"].startswith("total_copies")
    assert report["errors"][5]["detail"] == "Expected 6 fields, found 7"
    assert report["created"] + report["skipped"] + len(report["errors"]) == 12

    books = catalogue(client, librarian)
    assert set(books) == {isbn13(n) for n in (900, 901, 902, 908)}
    war = books[isbn13(901)]
    assert (war["title"], war["authors"], war["genres"]) == (
        "War and Peace",
        ["Leo Tolstoy", "Louise Maude"],
        ["Novel", "History"],
    )
    assert (war["published_date"], war["total_copies"], war["available_copies"]) == (
        "1869-01-01",
        3,
        3,
    )
    walden = books[isbn13(902)]
    assert (walden["published_date"], walden["total_copies"], walden["genres"]) == (None, 1, [])
    quoted = books[isbn13(908)]
    assert quoted["title"] == 'The "Quoted", Title\nacross lines'
    assert (quoted["genres"], quoted["status"]) == (["Poetry", "Epic"], "unavailable")
    assert books[isbn13(900)]["title"] == "Already here"
    # Imported books are searchable like any other.
    search = client.get(BOOKS, params={"q": "tolst peace"}, headers=librarian.headers).json()
    assert [b["title"] for b in search["items"]] == ["War and Peace"]


def test_importing_the_same_file_twice_skips_everything(
    client: TestClient, librarian: Account
) -> None:
    content = HEADER + "".join(f"Book {n},Author {n},{isbn13(950 + n)},,,2\n" for n in range(4))
    assert upload(client, librarian, content).json() == {"created": 4, "skipped": 0, "errors": []}
    assert upload(client, librarian, content).json() == {"created": 0, "skipped": 4, "errors": []}


def test_header_variants(client: TestClient, librarian: Account) -> None:
    # Byte-order mark, other case and order of the columns, Windows line ends.
    content = (
        "\ufeffISBN, Title ,Authors,Genres,Total_Copies,Published_Date\r\n"
        f"{isbn13(960)},Moby-Dick,Herman Melville,Novel,2,1851-10-18\r\n"
    )
    report = upload(client, librarian, content).json()
    assert report == {"created": 1, "skipped": 0, "errors": []}
    book = catalogue(client, librarian)[isbn13(960)]
    assert (book["title"], book["total_copies"], book["published_date"]) == (
        "Moby-Dick",
        2,
        "1851-10-18",
    )


def test_header_only_file(client: TestClient, librarian: Account) -> None:
    assert upload(client, librarian, HEADER).json() == {"created": 0, "skipped": 0, "errors": []}


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\n" + HEADER,
        "title,authors,isbn\nA,B,C\n",
        "title,authors,isbn,published_date,genres,copies\n",
        "title,authors,isbn,published_date,genres,total_copies,extra\n",
        "title;authors;isbn;published_date;genres;total_copies\n",
        "just some text",
    ],
)
def test_missing_or_wrong_header_is_refused(
    client: TestClient, librarian: Account, content: str
) -> None:
    response = upload(client, librarian, content)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_csv_header"
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    "content",
    [
        HEADER.encode() + f"Caf\xe9,Someone,{isbn13(970)},,,\n".encode("latin-1"),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        HEADER.encode() + b"A\x00,B,C,,,\n",
        (HEADER + f'"Never closed,Someone,{isbn13(971)},,,\n').encode(),
        (HEADER + f'"Stray"quote,Someone,{isbn13(972)},,,\n').encode(),
    ],
)
def test_a_file_that_is_not_csv_text_is_refused_whole(
    client: TestClient, librarian: Account, content: bytes
) -> None:
    good = f"Good row,Someone,{isbn13(973)},,,\n".encode()
    response = upload(
        client, librarian, HEADER.encode() + good + content.removeprefix(HEADER.encode())
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_csv"
    # Nothing was created, not even the good row before the bad bytes.
    assert catalogue(client, librarian) == {}


def test_import_needs_a_librarian(client: TestClient, member: Account) -> None:
    content = HEADER + f"T,A,{isbn13(980)},,,\n"
    assert upload(client, member, content).status_code == 403
    response = client.post(IMPORT, files={"file": ("b.csv", content.encode(), "text/csv")})
    assert response.status_code == 401


def test_import_needs_a_file(client: TestClient, librarian: Account) -> None:
    response = client.post(IMPORT, data={"other": "x"}, headers=librarian.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_rows_across_batches(
    client: TestClient, librarian: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from library_api.books import imports

    # Small batches, so duplicates and errors fall in different round trips.
    monkeypatch.setattr(imports, "IMPORT_BATCH", 3)
    lines = [f"Book {n},Author,{isbn13(1000 + n % 7)},,,1" for n in range(10)]
    lines.insert(4, "Broken,Author,123,,,")
    report = upload(client, librarian, HEADER + "\n".join(lines)).json()
    assert (report["created"], report["skipped"]) == (7, 3)
    assert report["errors"] == [{"row": 6, "detail": report["errors"][0]["detail"]}]
    assert len(catalogue(client, librarian)) == 7


def test_a_large_file_is_streamed(client: TestClient, librarian: Account) -> None:
    # Well over the 64 KiB read size and the 1 MiB an upload is kept in memory before
    # spilling to disk; each row is invalid, so the test stays fast on the embedded database.
    row = "x" * 400 + ",Author,not-an-isbn,,,1\n"
    count = 3000
    report = upload(client, librarian, HEADER + row * count).json()
    assert (report["created"], report["skipped"], len(report["errors"])) == (0, 0, count)
    assert report["errors"][-1]["row"] == count + 1
