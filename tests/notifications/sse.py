"""Reading a Server-Sent Events stream in a test, each wait bounded by a deadline.

The stream is read on the test's own thread: the client's read timeout bounds each wait, and
the heartbeat comments hand control back often enough to check a deadline between lines.
"""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2

STREAM = "/api/v1/notifications/stream"


@dataclass
class Event:
    fields: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.fields["data"])


@dataclass
class Comment:
    text: str


class EndedError(Exception):
    pass


class EventReader:
    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def _next(self, deadline: float) -> Event | Comment:
        """The next event or comment; `EndedError` when the server closed the stream."""
        pending = Event()
        while True:
            assert time.monotonic() < deadline, "nothing came in time"
            try:
                line = next(self._lines)
            except (StopIteration, httpx2.RemoteProtocolError, httpx2.ReadError):
                raise EndedError from None
            if line.startswith(":"):
                return Comment(line[1:].strip())
            if line == "":
                if "id" in pending.fields or "data" in pending.fields:
                    return pending
                pending = Event()
                continue
            name, _, value = line.partition(":")
            pending.fields[name] = value.removeprefix(" ")

    def next_event(self, within: float) -> Event:
        deadline = time.monotonic() + within
        while True:
            item = self._next(deadline)
            if isinstance(item, Event):
                return item

    def next_comment(self, within: float) -> str:
        item = self._next(time.monotonic() + within)
        assert isinstance(item, Comment), item
        return item.text

    def opened(self, within: float = 5) -> None:
        """Past the opening comment (after any replay): new notifications follow."""
        deadline = time.monotonic() + within
        while True:
            item = self._next(deadline)
            assert not isinstance(item, Event), item
            if item.text.startswith("notifications of this account"):
                return

    def quiet_for(self, seconds: float) -> None:
        """No event for `seconds` (comments are fine)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            item = self._next(deadline + 5)
            assert not isinstance(item, Event), item

    def ends(self, within: float) -> None:
        deadline = time.monotonic() + within
        try:
            while True:
                item = self._next(deadline)
                assert not isinstance(item, Event), item
        except EndedError:
            return


@contextmanager
def open_stream(http: httpx2.Client, headers: dict[str, str]) -> Iterator[EventReader]:
    with http.stream("GET", STREAM, headers=headers) as response:
        assert response.status_code == 200, response.read()
        yield EventReader(response)
