"""Ordered work on the default thread pool, a few batches ahead of the event loop.

An upload is hashed and written in batches that must be handled in order. Waiting for batch
n before handing over batch n+1 left both sides idle half of the time (bench/README.md), so
each kind of work is a `SerialStage`: batches queue up, and at most one pool thread works
through them, oldest first. The event loop only waits when a stage is `depth` batches behind.
"""

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

Batch = list[bytes]


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class SerialStage:
    """Applies `work` to each submitted batch, in order, on a pool thread.

    After a batch fails, the later ones are not worked on: they fail with the same error,
    so nothing is ever written past a gap.
    """

    def __init__(self, work: Callable[[Batch], object]) -> None:
        self._work = work
        self._queue: deque[tuple[Batch, asyncio.Future[None]]] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._error: BaseException | None = None

    def submit(self, batch: Batch) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._queue.append((batch, done))
            start, self._running = not self._running, True
        if start:
            loop.run_in_executor(None, self._drain, loop)
        return done

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                batch, done = self._queue.popleft()
            if self._error is None:
                try:
                    self._work(batch)
                except Exception as error:
                    self._error = error
            loop.call_soon_threadsafe(_resolve, done, self._error)


class Pipeline:
    """Batches in flight through one or more stages; `depth` bounds the memory they hold.

    Futures are awaited through `shield`: a cancelled request must not cancel them, since
    `settle` has to know when the threads are really done with the file.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._in_flight: deque[list[asyncio.Future[Any]]] = deque()

    def add(self, futures: list[asyncio.Future[Any]]) -> None:
        self._in_flight.append(futures)

    async def admit(self) -> None:
        """Wait until fewer than `depth` batches are in flight; raises a stage's error."""
        while len(self._in_flight) >= self.depth:
            await self._oldest()

    async def finish(self) -> None:
        """Wait for every batch in flight; raises a stage's error."""
        while self._in_flight:
            await self._oldest()

    async def _oldest(self) -> None:
        for future in self._in_flight[0]:
            await asyncio.shield(future)
        self._in_flight.popleft()

    async def settle(self) -> None:
        """Wait for every batch in flight, whatever its outcome."""
        while self._in_flight:
            for future in self._in_flight.popleft():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await future
