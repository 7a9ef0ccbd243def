"""GET /books: word-prefix search, filters, sorting and paging."""

import random
import string
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from tests.books.conftest import isbn13
from tests.conftest import Account

BOOKS = "/api/v1/books"
MakeBook = Callable[..., dict[str, Any]]


def search(client: TestClient, who: Account, **params: Any) -> dict[str, Any]:
    response = client.get(BOOKS, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def titles(client: TestClient, who: Account, **params: Any) -> list[str]:
    return [b["title"] for b in search(client, who, **params)["items"]]


@pytest.fixture
def shelf(make_book: MakeBook) -> dict[str, dict[str, Any]]:
    return {
        "cien": make_book(
            title="Cien años de soledad",
            authors=["Gabriel García Márquez"],
            isbn="978-0-06-088328-7",
            genres=["Novel", "Magic Realism"],
        ),
        "amor": make_book(
            title="El amor en los tiempos del cólera",
            authors=["Gabriel García Márquez"],
            isbn=isbn13(100),
            genres=["Novel"],
        ),
        "garcia": make_book(
            title="Garcia the Gardener",
            authors=["Ann Smith"],
            isbn=isbn13(101),
            genres=["Children"],
        ),
        "solaris": make_book(
            title="Solaris",
            authors=["Stanisław Lem"],
            isbn=isbn13(102),
            genres=["Science fiction"],
        ),
        "odyssey": make_book(
            title="The Odyssey",
            authors=["Homer", "Emily Wilson"],
            isbn=isbn13(103, prefix="979"),
            genres=["Poetry", "Epic"],
        ),
    }


@pytest.mark.usefixtures("shelf")
def test_accents_and_case_are_ignored(client: TestClient, member: Account) -> None:
    both = ["Cien años de soledad", "El amor en los tiempos del cólera"]
    assert titles(client, member, q="garcia marq") == both
    assert titles(client, member, q="GARCÍA MÁRQUEZ") == both
    assert titles(client, member, q="Marquez") == both
    assert titles(client, member, q="colera") == ["El amor en los tiempos del cólera"]
    assert titles(client, member, q="ANOS") == ["Cien años de soledad"]
    # ł has no Unicode decomposition; readers still type it as l.
    assert titles(client, member, q="stanislaw") == ["Solaris"]
    assert titles(client, member, q="stanisław") == ["Solaris"]


@pytest.mark.usefixtures("shelf")
def test_every_word_must_prefix_a_word(client: TestClient, member: Account) -> None:
    assert titles(client, member, q="cien sol") == ["Cien años de soledad"]
    # Words may come from different fields: the author and the title.
    assert titles(client, member, q="gabr soled") == ["Cien años de soledad"]
    assert titles(client, member, q="  gar  ") == [
        "Cien años de soledad",
        "El amor en los tiempos del cólera",
        "Garcia the Gardener",
    ]
    assert titles(client, member, q="cien zebra") == []
    # A prefix, never a substring.
    assert titles(client, member, q="arcia") == []
    assert titles(client, member, q="oledad") == []
    # Each word on its own: both may be prefixes of the same word.
    assert titles(client, member, q="so sol solar") == ["Solaris"]
    # Punctuation inside a word splits it, like it does in the stored text.
    assert titles(client, member, q="garcía-márquez cien") == ["Cien años de soledad"]


@pytest.mark.usefixtures("shelf")
def test_title_and_author_filters(client: TestClient, member: Account) -> None:
    assert titles(client, member, title="garcia") == ["Garcia the Gardener"]
    assert titles(client, member, author="garcia") == [
        "Cien años de soledad",
        "El amor en los tiempos del cólera",
    ]
    assert titles(client, member, author="garcia", title="cien") == ["Cien años de soledad"]
    assert titles(client, member, author="homer wil") == ["The Odyssey"]
    assert titles(client, member, author="odyssey") == []
    assert titles(client, member, title="homer") == []
    # Filters combine with q.
    assert titles(client, member, q="gard", author="smith") == ["Garcia the Gardener"]
    assert titles(client, member, q="gard", author="homer") == []
    # The ISBN is only searched by q.
    assert titles(client, member, title="9780060883287") == []


@pytest.mark.usefixtures("shelf")
def test_isbn_search(client: TestClient, member: Account) -> None:
    cien = ["Cien años de soledad"]
    assert titles(client, member, q="9780060883287") == cien
    assert titles(client, member, q="978-0-06-088328-7") == cien
    assert titles(client, member, q="978-0-06") == cien
    assert titles(client, member, q="0060883286") == cien  # its ISBN-10
    assert titles(client, member, q="0-06-088") == cien
    assert titles(client, member, q="978-0-06 soledad") == cien
    assert titles(client, member, q=isbn13(103, prefix="979")) == ["The Odyssey"]
    assert titles(client, member, q="979") == ["The Odyssey"]
    assert titles(client, member, q="0883287") == []


def test_isbn_10_ending_in_x_is_searchable(
    client: TestClient, member: Account, make_book: MakeBook
) -> None:
    make_book(title="Ten", isbn="0-8044-2957-X")
    assert titles(client, member, q="080442957x") == ["Ten"]
    assert titles(client, member, q="0-8044-2957-X") == ["Ten"]
    assert titles(client, member, q="9780804429573") == ["Ten"]


def test_numbers_in_titles(client: TestClient, member: Account, make_book: MakeBook) -> None:
    make_book(title="Nineteen Eighty-Four (1984)", authors=["George Orwell"])
    assert titles(client, member, q="1984") == ["Nineteen Eighty-Four (1984)"]
    assert titles(client, member, q="eighty-four orwell") == ["Nineteen Eighty-Four (1984)"]


METACHARACTERS = [
    ".*",
    "*",
    "(",
    ")",
    "[",
    "\\",
    "^",
    "$",
    "^.*$",
    "?",
    "+",
    "{1}",
    "|",
    "'\"",
    "%",
]


@pytest.mark.usefixtures("shelf")
def test_regex_metacharacters_are_text(client: TestClient, member: Account) -> None:
    # A text with no letter or digit matches nothing (it would match everything as a regex).
    for q in [*METACHARACTERS, "\x00", "-", "---"]:
        body = search(client, member, q=q)
        assert (body["items"], body["total"]) == ([], 0), q
        assert search(client, member, title=q)["total"] == 0
        assert search(client, member, author=q)["total"] == 0


@pytest.mark.usefixtures("shelf")
def test_metacharacters_around_words(client: TestClient, member: Account) -> None:
    assert titles(client, member, q="sol.*") == ["Cien años de soledad", "Solaris"]
    assert titles(client, member, q="(solaris)") == ["Solaris"]
    assert titles(client, member, q="s.laris") == []
    assert titles(client, member, q="sol|cien") == ["Cien años de soledad"]


@pytest.mark.usefixtures("shelf")
def test_long_punctuation_query_is_harmless(client: TestClient, member: Account) -> None:
    rng = random.Random(1234)
    for _ in range(5):
        q = "".join(rng.choice(string.punctuation + " ") for _ in range(200))
        response = client.get(BOOKS, params={"q": q}, headers=member.headers)
        assert response.status_code == 200
        assert response.json()["total"] == 0


@pytest.mark.usefixtures("shelf")
def test_blank_text_does_not_restrict(client: TestClient, member: Account) -> None:
    assert search(client, member, q="", title="  ", author="")["total"] == 5


def test_query_length_is_bounded(client: TestClient, member: Account) -> None:
    response = client.get(BOOKS, params={"q": "a " * 251}, headers=member.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.usefixtures("shelf")
def test_many_words(client: TestClient, member: Account) -> None:
    q = " ".join(["cien", "años", "de", "soledad", "gabriel", "garcía", "márquez"] * 10)
    assert titles(client, member, q=q) == ["Cien años de soledad"]


@pytest.mark.usefixtures("shelf")
def test_genre_ignores_case(client: TestClient, member: Account) -> None:
    novels = ["Cien años de soledad", "El amor en los tiempos del cólera"]
    assert titles(client, member, genre="novel") == novels
    assert titles(client, member, genre="NOVEL") == novels
    assert titles(client, member, genre="magic realism") == ["Cien años de soledad"]
    assert titles(client, member, genre="nov") == []
    assert titles(client, member, genre="epic", q="homer") == ["The Odyssey"]
    assert titles(client, member, genre="epic", q="garcia") == []


def _lend(raw_db: Any, book: dict[str, Any], loaned: int, held: int = 0) -> None:
    total = book["total_copies"]
    raw_db.books.update_one(
        {"_id": ObjectId(book["id"])},
        {
            "$set": {
                "loaned_copies": loaned,
                "held_copies": held,
                "available_copies": total - loaned - held,
            }
        },
    )


def test_available_filter_and_status(
    client: TestClient, member: Account, make_book: MakeBook, raw_db: Any
) -> None:
    on_shelf = make_book(title="A on shelf", total_copies=2)
    partial = make_book(title="B partial", total_copies=3)
    out = make_book(title="C out", total_copies=2)
    held = make_book(title="D held", total_copies=1)
    make_book(title="E none", total_copies=0)
    _lend(raw_db, partial, loaned=1, held=1)
    _lend(raw_db, out, loaned=2)
    _lend(raw_db, held, loaned=0, held=1)

    books = {b["title"]: b for b in search(client, member)["items"]}
    assert {t: (b["status"], b["available_copies"]) for t, b in books.items()} == {
        "A on shelf": ("available", 2),
        "B partial": ("partial", 1),
        "C out": ("borrowed", 0),
        "D held": ("borrowed", 0),
        "E none": ("unavailable", 0),
    }
    assert titles(client, member, available="true") == ["A on shelf", "B partial"]
    assert titles(client, member, available="false") == ["C out", "D held", "E none"]
    assert titles(client, member, available="true", q="partial") == ["B partial"]
    assert on_shelf["status"] == "available"


@pytest.fixture
def dated(make_book: MakeBook) -> list[dict[str, Any]]:
    books = []
    for title, published in [
        ("banana", "1900-01-01"),
        ("Apple", "2001-05-05"),
        ("Éclair", None),
        ("cherry", "1850-12-31"),
        ("date", "1999-09-09"),
    ]:
        books.append(make_book(title=title, published_date=published))
        clock.advance(timedelta(minutes=1))
    return books


SORTED = {
    "title": ["Apple", "banana", "cherry", "date", "Éclair"],
    "-title": ["Éclair", "date", "cherry", "banana", "Apple"],
    # A book with no date sorts before every dated one (MongoDB orders null first).
    "published_date": ["Éclair", "cherry", "banana", "date", "Apple"],
    "-published_date": ["Apple", "date", "banana", "cherry", "Éclair"],
    "created_at": ["banana", "Apple", "Éclair", "cherry", "date"],
    "-created_at": ["date", "cherry", "Éclair", "Apple", "banana"],
}


@pytest.mark.usefixtures("dated")
def test_sort_orders(client: TestClient, member: Account) -> None:
    assert titles(client, member) == SORTED["title"]
    for sort, expected in SORTED.items():
        assert titles(client, member, sort=sort) == expected, sort
        # The same order, page by page.
        paged = [
            t
            for page in (1, 2, 3)
            for t in titles(client, member, sort=sort, page=page, page_size=2)
        ]
        assert paged == expected, sort


def test_unknown_sort_is_422(client: TestClient, member: Account) -> None:
    for sort in ("isbn", "TITLE", "-", "title,-created_at"):
        response = client.get(BOOKS, params={"sort": sort}, headers=member.headers)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"


def test_ties_are_broken_by_id_so_pages_are_stable(
    client: TestClient, member: Account, make_book: MakeBook
) -> None:
    # Same title, same date, same creation time: only the id tells them apart.
    ids = sorted(make_book(title="Same", published_date="2000-01-01")["id"] for _ in range(7))
    for sort in SORTED:
        expected = ids[::-1] if sort.startswith("-") else ids
        seen = []
        for page in range(1, 5):
            body = search(client, member, sort=sort, page=page, page_size=2)
            assert body["total"] == 7
            seen += [b["id"] for b in body["items"]]
        assert seen == expected, sort


def test_paging_bounds(client: TestClient, member: Account, make_book: MakeBook) -> None:
    for i in range(3):
        make_book(title=f"Book {i}")
    body = search(client, member, page=2, page_size=2)
    assert (len(body["items"]), body["total"], body["page"], body["page_size"]) == (1, 3, 2, 2)
    past = search(client, member, page=9, page_size=2)
    assert (past["items"], past["total"], past["page"]) == ([], 3, 9)
    exact = search(client, member, page=1, page_size=3)
    assert (len(exact["items"]), exact["total"]) == (3, 3)
    assert search(client, member, page_size=100)["total"] == 3
    assert search(client, member)["page_size"] == 20
    for params in ({"page": 0}, {"page_size": 101}, {"page_size": 0}, {"page": "x"}):
        response = client.get(BOOKS, params=params, headers=member.headers)
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"


def test_empty_catalogue(client: TestClient, member: Account) -> None:
    assert search(client, member) == {"items": [], "total": 0, "page": 1, "page_size": 20}
    assert search(client, member, page=3)["total"] == 0


def test_listing_needs_a_token(client: TestClient) -> None:
    response = client.get(BOOKS)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_edits_keep_search_in_step(
    client: TestClient, member: Account, librarian: Account, make_book: MakeBook
) -> None:
    book = make_book(title="Old Title", authors=["First Writer"], isbn=isbn13(500))
    response = client.patch(
        f"{BOOKS}/{book['id']}",
        json={"title": "Brand New", "isbn": isbn13(501)},
        headers=librarian.headers,
    )
    assert response.status_code == 200
    assert titles(client, member, q="old") == []
    assert titles(client, member, q="brand first") == ["Brand New"]
    assert titles(client, member, q=isbn13(500)) == []
    assert titles(client, member, q=isbn13(501)) == ["Brand New"]
    assert titles(client, member, title="new") == ["Brand New"]
    client.patch(
        f"{BOOKS}/{book['id']}", json={"authors": ["Other Person"]}, headers=librarian.headers
    )
    assert titles(client, member, q="first") == []
    assert titles(client, member, author="other") == ["Brand New"]
    assert titles(client, member, q="brand other " + isbn13(501)[:6]) == ["Brand New"]
