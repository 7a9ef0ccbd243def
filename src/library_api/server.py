"""`library-api serve`: Granian's embeddable server on this process's event loop.

Granian's HTTP/1 parser (hyper) reads a request head into a buffer of a set size and answers
`431` with the connection closed when the head does not fit, and it closes a connection
whose head has not arrived within a set time: both documented settings, which uvicorn lacks.
The buffer is `READ_BUFFER_BYTES` (64 KiB), or `MAX_HEADER_BYTES` if larger: the most of a
hostile head read before the server refuses it, and the size of each piece of a body handed to
the app (larger pieces stream uploads faster: bench/README.md). `MAX_HEADER_BYTES` below it is
applied by `limits.LimitsMiddleware` on the parsed head.

The embeddable server (Granian's documented API for "advanced lifecycle management") runs on
our own loop, so a stop is ours to handle: on SIGTERM or SIGINT the server stops accepting,
requests in flight get `SHUTDOWN_GRACE_SECONDS` to finish, then the rest are cancelled and,
when nothing was sent yet, answered `503 shutting_down`; the lifespan (database) closes last.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server
from granian.utils.proxies import wrap_asgi_with_proxy_headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings
from .limits import refuse

logger = logging.getLogger("library_api")


class InFlight:
    """The app, counting the requests it is running so that a stop can wait for them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[Any]] = set()
        # Event streams (text/event-stream answers): they never finish by themselves, and
        # their clients reconnect (to another instance) with Last-Event-ID, missing nothing.
        self.streams: set[asyncio.Task[Any]] = set()
        self.ended: set[asyncio.Task[Any]] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        self.tasks.add(task)
        self.idle.clear()
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if _is_event_stream(message):
                    self.streams.add(task)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except asyncio.CancelledError:
            if task not in self.ended:
                raise
            # Cancelled by `drain`: the request is over, and its client is told why.
            task.uncancel()
            if not started:
                await refuse(send, 503, "shutting_down", "The service is restarting; try again")
        finally:
            self.tasks.discard(task)
            self.streams.discard(task)
            self.ended.discard(task)
            if not self.tasks:
                self.idle.set()

    async def drain(self, grace: float) -> int:
        """Ends the event streams at once, waits up to `grace` seconds for the other requests
        in flight, then cancels the rest; how many were cancelled after the grace."""
        self._end(set(self.streams))
        try:
            async with asyncio.timeout(grace):
                await self.idle.wait()
            return 0
        except TimeoutError:
            pass
        left = set(self.tasks)
        self._end(left)
        await asyncio.wait(left, timeout=5)
        return len(left)

    def _end(self, tasks: set[asyncio.Task[Any]]) -> None:
        self.ended |= tasks
        for task in tasks:
            task.cancel()


def _is_event_stream(start: Message) -> bool:
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).split(b";")[0].strip().lower() == b"text/event-stream"
    return False


def http1_settings(settings: Settings) -> HTTP1Settings:
    return HTTP1Settings(
        header_read_timeout=int(settings.header_timeout_seconds * 1000),
        max_buffer_size=max(settings.read_buffer_bytes, settings.max_header_bytes),
    )


def run(
    app: ASGIApp, *, settings: Settings, host: str, port: int, log_config: dict[str, Any]
) -> None:
    """`serve` on uvloop where it is installed (Linux, macOS), else on asyncio's own loop."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    asyncio.run(
        serve(app, settings=settings, host=host, port=port, log_config=log_config),
        loop_factory=factory,
    )


async def serve(
    app: ASGIApp, *, settings: Settings, host: str, port: int, log_config: dict[str, Any]
) -> None:
    tracked = InFlight(app)
    server = Server(
        wrap_asgi_with_proxy_headers(tracked, trusted_hosts="127.0.0.1"),
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=http1_settings(settings),
        log_dictconfig=log_config,
        # Requests served at once; each open notification stream holds one for its life, so
        # room for all of them and the ordinary traffic beside (Granian's default is 128).
        backpressure=settings.notify_streams_total + 128,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        streams = len(tracked.streams)
        logger.info(
            "stopping: %d event stream(s) end now; %d other request(s) in flight get %g s "
            "to finish",
            streams,
            len(tracked.tasks) - streams,
            settings.shutdown_grace_seconds,
        )
        server.stop()  # type: ignore[no-untyped-call]
        cancelled = await tracked.drain(settings.shutdown_grace_seconds)
        if cancelled:
            logger.warning("stopping: cancelled %d request(s) still running", cancelled)
    stopping.cancel()
    await serving
