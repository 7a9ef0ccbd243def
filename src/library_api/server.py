"""uvicorn's HTTP protocol, reading no more of a request body than its first message may hold.

uvicorn (httptools) reads whatever the socket holds, up to 256 KiB at a time, and hands all
of it to the app's next `receive()`. An upload the app refuses on its first bytes (an HTML
page sent as a PDF) has then cost whatever had piled up: 125 KiB on a busy machine
(bench/README.md). `HttpProtocol` reads the socket into a buffer it sizes itself (asyncio's
`BufferedProtocol`): a request's head and the first 64 KiB of its body are read no faster
than the app takes them, so the app's first message holds at most 64 KiB. The rest of the
body comes in reads of up to 1 MiB (uvloop's own are 256 KiB): a quarter as many messages
per upload, which took the read-and-discard ceiling of bench/upload.py from ~1,600 to
~2,100 MiB/s. Reading still pauses while 64 KiB or more wait for the app, so a connection
holds at most ~1 MiB of unread body. `library-api serve` runs with it.
"""

import asyncio
import threading
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_BYTES = 1024 * 1024
# Also the most of a body the app's first message may hold.
FIRST_BYTES = HIGH_WATER_LIMIT

_buffers = threading.local()


def _read_buffer() -> memoryview:
    # One per thread (one event loop each), shared by its connections: a read is handed on
    # (httptools copies what it keeps) before the loop reads another socket.
    buffer: memoryview | None = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(READ_BYTES))
    return buffer


class _Http(HttpToolsProtocol):
    """uvicorn's protocol, counting how much of the current request's body it has read."""

    body_read = 0
    body_length: int | None = None

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.body_read = 0
        declared = dict(self.headers).get(b"content-length", b"")
        self.body_length = int(declared) if declared.isdigit() else None

    def body_left(self) -> int | None:
        """Bytes of this body still to come from the socket, when its length was declared."""
        return None if self.body_length is None else max(self.body_length - self.body_read, 0)

    def on_body(self, body: bytes) -> None:
        self.body_read += len(body)
        super().on_body(body)

    def unread_body(self) -> int | None:
        """Body bytes waiting for the app; None between requests."""
        cycle = self.cycle
        return None if cycle is None or cycle.response_complete else len(cycle.body)


class HttpProtocol(asyncio.BufferedProtocol):
    """`HttpToolsProtocol` behind a read buffer sized here.

    A wrapper rather than a subclass: uvloop reads into the protocol's buffer only for a
    protocol that is not an `asyncio.Protocol`, which uvicorn's is.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._http = _Http(*args, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._http.connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self._http.connection_lost(exc)

    def eof_received(self) -> None:
        self._http.eof_received()

    def pause_writing(self) -> None:
        self._http.pause_writing()

    def resume_writing(self) -> None:
        self._http.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        view = _read_buffer()
        unread = self._http.unread_body()
        if unread is None or not self._http.cycle.more_body:
            # What comes next belongs to the next request: its head, maybe its body's start.
            return view[:FIRST_BYTES]
        if self._http.body_read - unread < FIRST_BYTES:
            # The app has not taken 64 KiB of this body yet.
            return view[: max(FIRST_BYTES - unread, 1)]
        # Not past this body's end: a pipelined request behind it starts like any other.
        left = self._http.body_left()
        return view if left is None else view[: max(min(left, READ_BYTES), 1)]

    def buffer_updated(self, nbytes: int) -> None:
        self._http.data_received(_read_buffer()[:nbytes])  # type: ignore[arg-type]
        unread = self._http.unread_body()
        if unread is not None and unread >= FIRST_BYTES:
            # uvicorn pauses only past the mark; at it, the next read would be 1 byte.
            self._http.flow.pause_reading()
