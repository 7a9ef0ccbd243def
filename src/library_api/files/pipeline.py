"""Ordered work on the default thread pool, a few batches ahead of the event loop.

An upload is hashed and written in batches that must be handled in order. Waiting for batch
n before handing over batch n+1 left both sides idle half of the time (bench/README.md), so
each kind of work is a `SerialStage`: batches queue up and go to the thread pool one at a
time, oldest first. The event loop only waits when a stage is `depth` batches behind.
"""

import asyncio
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
    """Applies `work` to each submitted batch, in order, one pool call per batch.

    The next batch goes to the pool only when the previous one is done, so a stage never
    holds one of the pool's few threads for longer than a batch: downloads, commits and every
    other `to_thread` call get their turn between batches. After a batch fails, the later ones
    are not worked on: they fail with the same error, so nothing is written past a gap.
    """

    def __init__(self, work: Callable[[Batch], object]) -> None:
        self._work = work
        # Touched on the event loop's thread only (submit and _finished), so no lock.
        self._queue: deque[tuple[Batch, asyncio.Future[None]]] = deque()
        self._busy = False
        self._error: BaseException | None = None

    def submit(self, batch: Batch) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((batch, done))
        if not self._busy:
            self._next(loop)
        return done

    def _next(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._error is not None:
            _resolve(self._queue.popleft()[1], self._error)
        self._busy = bool(self._queue)
        if self._busy:
            batch, done = self._queue.popleft()
            loop.run_in_executor(None, self._step, loop, batch, done)

    def _step(
        self, loop: asyncio.AbstractEventLoop, batch: Batch, done: asyncio.Future[None]
    ) -> None:
        error: BaseException | None = None
        try:
            self._work(batch)
        except BaseException as exc:  # whatever it is, the waiting request must hear of it
            error = exc
        loop.call_soon_threadsafe(self._finished, loop, done, error)

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[None],
        error: BaseException | None,
    ) -> None:
        self._error = self._error or error
        _resolve(done, error)
        self._next(loop)


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
        """Wait for every batch in flight, whatever its outcome.

        `asyncio.wait` neither cancels the futures nor hides a cancellation of this call.
        """
        while self._in_flight:
            batch = self._in_flight[0]
            await asyncio.wait(batch)
            self._in_flight.popleft()
            for future in batch:
                if not future.cancelled():
                    future.exception()  # retrieved: a failed batch is the caller's to report
