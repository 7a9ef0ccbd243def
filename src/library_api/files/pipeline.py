"""Ordered work on the default thread pool, a few batches ahead of the event loop.

An upload is hashed and written in batches that must be handled in order. Waiting for batch
n before handing over batch n+1 left both sides idle half of the time (bench/README.md), so
each kind of work is a `SerialStage`: batches queue up and go to the thread pool one at a
time, oldest first. The event loop only waits when a stage is `depth` batches behind.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
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
    """Applies `work` to each submitted batch, in order, one batch at a time.

    `work` is a coroutine function that makes one worker-thread call per batch (an aiofiles
    write, or `asyncio.to_thread`), so a stage never holds one of the pool's few threads for
    longer than a batch: downloads, commits and every other thread-pool call get their turn
    between batches. After a batch fails, the later ones are not worked on: they fail with
    the same error, so nothing is written past a gap.
    """

    def __init__(self, work: Callable[[Batch], Awaitable[object]]) -> None:
        self._work = work
        self._queue: deque[tuple[Batch, asyncio.Future[None]]] = deque()
        # One task works through the queue while it is not empty, which costs the event loop
        # less than a task per batch (bench/README.md).
        self._runner: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._stopped = False

    def submit(self, batch: Batch) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stopped:
            done.cancel()
            return done
        self._queue.append((batch, done))
        # A runner that is done may not have run its callback yet: it takes nothing more.
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run())
            self._runner.add_done_callback(self._runner_done)
        return done

    async def _run(self) -> None:
        while self._queue:
            batch, done = self._queue[0]
            if self._error is None:
                try:
                    await self._work(batch)
                except Exception as exc:
                    self._error = exc
            self._queue.popleft()
            _resolve(done, self._error)

    def _runner_done(self, runner: asyncio.Task[None]) -> None:
        if self._runner is runner:
            self._runner = None
        if runner.cancelled() or runner.exception() is not None:
            # Cancelled with the loop, maybe before its first step: no batch may wait for
            # ever. A batch whose thread call is under way is let go without waiting for it:
            # the loop is going away.
            self._stopped = True
            for _, done in self._queue:
                done.cancel()
            self._queue.clear()


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
