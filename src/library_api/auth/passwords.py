"""The 10,000 most common passwords (zxcvbn's frequency list, MIT), refused at sign-up."""

from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    text = files("library_api.auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def is_common(password: str) -> bool:
    # The list is lower-case; "Password1" is as guessable as "password1".
    return password.lower() in _common()
