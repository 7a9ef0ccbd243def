"""The one source of the current time, so tests can move it without sleeping."""

from datetime import UTC, datetime, timedelta

_offset = timedelta()


def now() -> datetime:
    # MongoDB keeps milliseconds; truncating here makes stored and returned times agree.
    t = datetime.now(UTC) + _offset
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def advance(delta: timedelta) -> None:
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta()
