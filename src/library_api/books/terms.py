"""How titles, authors and ISBNs become the indexed words that prefix search runs on.

A stored word and a query word go through the same folding (case, accents, a few Latin
letters Unicode does not decompose), so a query can only ever be compared, with an anchored
prefix regex on one element, against an indexed array of words: the index bounds stay tight
on MongoDB.
"""

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from stdnum import isbn as stdnum_isbn
from stdnum.exceptions import ValidationError as StdnumValidationError

from ..errors import AppError

# Letters with no Unicode decomposition that readers still type without their mark.
_LATIN = str.maketrans(
    {
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ł": "l",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "\u0131": "i",
        "ħ": "h",
    }
)
_NON_WORD = re.compile(r"[\W_]+")
# A query word like "978-0-14" or "014044913X": compared with the ISBN terms, hyphens removed.
_ISBN_LIKE = re.compile(r"[0-9Xx-]*[0-9][0-9Xx-]*")
_MAX_ISBN_INPUT = 40


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_LATIN)


def words(text: str) -> list[str]:
    """The folded words of a text, in order, without repeats."""
    return list(dict.fromkeys(w for w in _NON_WORD.split(fold(text)) if w))


def title_key(title: str) -> str:
    """What titles sort on: case and accents do not change the order."""
    return " ".join(_NON_WORD.split(fold(title))).strip()


def genre_key(genre: str) -> str:
    return genre.strip().casefold()


def genre_keys(genres: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(genre_key(g) for g in genres))


def author_terms(authors: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(w for a in authors for w in words(a)))


def isbn_terms(isbn13: str) -> list[str]:
    """The 13-digit form, and the 10-character form when the ISBN has one."""
    terms = [isbn13]
    if isbn13.startswith("978"):
        terms.append(stdnum_isbn.to_isbn10(isbn13).lower())
    return terms


def search_terms(*term_lists: list[str]) -> list[str]:
    return list(dict.fromkeys(t for terms in term_lists for t in terms))


def normalize_isbn(value: str) -> str:
    """The 13-digit form of an ISBN-10 or ISBN-13 written with or without hyphens/spaces."""
    try:
        if len(value) > _MAX_ISBN_INPUT:
            raise StdnumValidationError()
        compact = stdnum_isbn.validate(value)
    except StdnumValidationError as exc:
        reason = str(exc) if str(exc) else "The number has an invalid format."
        raise AppError(422, "invalid_isbn", f"Not a valid ISBN-10 or ISBN-13: {reason}") from None
    return str(stdnum_isbn.to_isbn13(compact))


def query_words(text: str, *, isbn: bool) -> list[str]:
    """The words a query must match as prefixes.

    A word that is a prefix of another query word is dropped: whatever term the longer word
    prefixes, the shorter one prefixes too, so the clause would only cost the database time.
    """
    found: list[str] = []
    for token in text.split():
        if isbn and _ISBN_LIKE.fullmatch(token):
            found.append(token.replace("-", "").lower())
        else:
            found.extend(words(token))
    unique = list(dict.fromkeys(found))
    return [w for w in unique if not any(o != w and o.startswith(w) for o in unique)]


def prefix_clauses(field: str, query: list[str]) -> list[dict[str, Any]]:
    """One `$elemMatch` of an anchored prefix regex per word, on an array of indexed words.

    On an array field it matches exactly what the bare regex matches (some element starts
    with the word) and MongoDB still scans one range of the multikey index per word; the
    embedded engine runs this form in SQL, where the bare regex is evaluated in Python on
    every document.
    """
    return [{field: {"$elemMatch": {"$regex": "^" + re.escape(w)}}} for w in query]
