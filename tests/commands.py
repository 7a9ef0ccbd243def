"""Database commands as sent on the wire (PyMongo command monitoring), for the tests that
count them.

One listener for the whole run: PyMongo cannot remove one, and a client sees only the
listeners registered before it was made (so those tests run an app of their own, `watched`,
started after this module was imported).
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring


@dataclass(frozen=True)
class Sent:
    name: str  # the command: "find", "update", ...
    collection: str  # what it names, e.g. "books"
    command: dict[str, Any]


class _Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.recording = False
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording:
            target = str(event.command.get(event.command_name))
            with self._lock:
                self.sent.append(Sent(event.command_name, target, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_recorder = _Recorder()
monitoring.register(_recorder)


@contextmanager
def recording() -> Iterator[list[Sent]]:
    """Every command sent inside the block, in order, as they are sent."""
    _recorder.sent.clear()
    _recorder.recording = True
    try:
        yield _recorder.sent
    finally:
        _recorder.recording = False


def recorded[R](call: Callable[[], R]) -> tuple[R, list[Sent]]:
    """What `call` returns, and every command sent while it ran, in order."""
    with recording() as sent:
        result = call()
    return result, list(sent)
