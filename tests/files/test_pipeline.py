"""The ordered hand-over of upload batches to worker threads (no HTTP: a concurrency rule)."""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from library_api.files.pipeline import Batch, Pipeline, SerialStage


def threaded(work: Callable[[Batch], object]) -> Callable[[Batch], Awaitable[object]]:
    """A stage's work as the writers do it: one worker-thread call per batch."""
    return lambda batch: asyncio.to_thread(work, batch)


def test_batches_are_worked_on_in_order_by_one_thread_at_a_time() -> None:
    seen: list[bytes] = []
    busy = threading.Lock()

    def work(batch: list[bytes]) -> None:
        assert busy.acquire(blocking=False), "two threads worked on one stage at once"
        time.sleep(0.002)
        seen.extend(batch)
        busy.release()

    async def main() -> None:
        stage, pipeline = SerialStage(threaded(work)), Pipeline(depth=3)
        for n in range(12):
            await pipeline.admit()
            pipeline.add([stage.submit([bytes([n])])])
        await pipeline.finish()

    asyncio.run(main())
    assert seen == [bytes([n]) for n in range(12)]


def test_after_a_failure_no_later_batch_is_worked_on() -> None:
    seen: list[int] = []

    def work(batch: list[bytes]) -> None:
        if batch[0] == b"2":
            raise OSError(28, "No space left on device")
        seen.append(int(batch[0]))

    async def main() -> None:
        stage, pipeline = SerialStage(threaded(work)), Pipeline(depth=10)
        for n in range(5):
            pipeline.add([stage.submit([str(n).encode()])])
        with pytest.raises(OSError, match="No space"):
            await pipeline.finish()
        await pipeline.settle()  # as the writer's abort does

    asyncio.run(main())
    assert seen == [0, 1]


def test_admission_waits_while_depth_batches_are_in_flight() -> None:
    gate = threading.Event()

    async def main() -> None:
        stage, pipeline = SerialStage(threaded(lambda batch: gate.wait(5))), Pipeline(depth=2)
        for _ in range(2):
            await pipeline.admit()
            pipeline.add([stage.submit([b"x"])])
        waiting = asyncio.ensure_future(pipeline.admit())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        gate.set()
        await asyncio.wait_for(waiting, 5)
        await pipeline.finish()

    asyncio.run(main())


def test_settle_waits_for_work_in_flight_even_after_a_cancellation() -> None:
    gate, finished = threading.Event(), threading.Event()

    def work(batch: list[bytes]) -> None:
        gate.wait(5)
        finished.set()

    async def main() -> None:
        stage, pipeline = SerialStage(threaded(work)), Pipeline(depth=1)
        pipeline.add([stage.submit([b"x"])])
        waiting = asyncio.ensure_future(pipeline.finish())
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        asyncio.get_running_loop().call_later(0.05, gate.set)
        await pipeline.settle()
        assert finished.is_set()

    asyncio.run(main())


def test_a_slow_stage_lets_other_pool_work_through_between_batches() -> None:
    # One pool thread, as when every thread is taken: other work must not wait for the
    # whole upload, only for the batch in hand.
    async def main() -> float:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        stage, pipeline = SerialStage(threaded(lambda batch: time.sleep(0.05))), Pipeline(depth=20)
        for _ in range(12):
            pipeline.add([stage.submit([b"x"])])
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        await asyncio.to_thread(lambda: None)
        waited = time.perf_counter() - started
        await pipeline.finish()
        return waited

    assert asyncio.run(main()) < 0.3  # one batch is 0.05 s; the whole upload 0.6 s


@pytest.mark.parametrize("started", [True, False])
def test_a_stage_cancelled_with_the_loop_leaves_no_batch_waiting(started: bool) -> None:
    async def main() -> list[asyncio.Future[None]]:
        never = asyncio.Event()
        stage = SerialStage(lambda batch: never.wait())
        futures = [stage.submit([b"x"]) for _ in range(3)]
        if started:
            await asyncio.sleep(0)  # the first batch is being worked on
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()  # as asyncio.run does on the way out
        _, pending = await asyncio.wait(futures, timeout=5)
        assert not pending
        later = stage.submit([b"y"])
        await asyncio.sleep(0)
        assert later.cancelled()
        return futures

    assert all(future.cancelled() for future in asyncio.run(main()))


def test_a_batch_submitted_as_the_runner_finishes_is_still_worked_on() -> None:
    seen: list[bytes] = []

    async def work(batch: list[bytes]) -> None:
        seen.extend(batch)

    async def main() -> None:
        stage = SerialStage(work)
        first = stage.submit([b"1"])
        await first  # the runner's task is done; its done callback has not run yet
        await asyncio.wait_for(stage.submit([b"2"]), 5)

    asyncio.run(main())
    assert seen == [b"1", b"2"]
