"""Borrow and return latency against the size of the loan history: `python bench/history.py`.

For each history size (default 100 and 20,000 returned loans): starts `library-api serve` on
the embedded database in a temporary folder once (collections and indexes), stops it, writes
the returned loans straight into `loan_history` with mongoeco in-process (its batch insert;
the wire's is one document at a time), starts the server again, creates books and members
through the API, and has every member borrow a random book and return it at once for a
bounded time. Prints p50/p95/p99 of borrow and return per history size, and the ratio.
"""

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from bson import ObjectId

from borrow import CHEAP_LOGINS, machine, setup
from server import API, running, server_env


def seed_history(database_file: Path, count: int) -> None:
    from mongoeco import MongoClient
    from mongoeco.engines.sqlite import SQLiteEngine

    client: Any = MongoClient(SQLiteEngine(str(database_file)))
    history = client["library"]["loan_history"]
    start = datetime.now(UTC) - timedelta(days=400)
    for first in range(0, count, 2000):
        batch = []
        for n in range(first, min(count, first + 2000)):
            borrowed = start + timedelta(minutes=n)
            batch.append(
                {
                    "_id": ObjectId(),
                    "book_id": ObjectId(),
                    "user_id": ObjectId(),
                    "book_title": f"Old book {n % 500}",
                    "borrowed_at": borrowed,
                    "due_at": borrowed + timedelta(days=14),
                    "returned_at": borrowed + timedelta(days=3),
                    "renewals": 0,
                    "status": "returned",
                    "fine_cents": 0,
                }
            )
        history.insert_many(batch)
    client.close()


def storm(base: str, books: list[str], members: list[dict[str, str]], seconds: float) -> Any:
    latencies: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(n)
        with httpx2.Client(base_url=base, headers=members[n], timeout=60) as client:
            while time.monotonic() < stop:
                book = rng.choice(books)
                began = time.perf_counter()
                lent = client.post(f"{API}/books/{book}/borrow")
                took = time.perf_counter() - began
                if lent.status_code != 201:
                    continue
                began = time.perf_counter()
                back = client.post(f"{API}/books/{book}/return")
                back.raise_for_status()
                with lock:
                    latencies["borrow"].append(took)
                    latencies["return"].append(time.perf_counter() - began)

    with ThreadPoolExecutor(len(members)) as pool:
        list(pool.map(worker, range(len(members))))
    return latencies


def run(history: int, args: argparse.Namespace) -> dict[str, tuple[int, float, float, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        folder = Path(tmp)
        env = server_env(folder, **CHEAP_LOGINS)
        with running(folder, env, log=folder / "first.log"):
            pass
        seed_history(folder / "library.sqlite3", history)
        with (
            running(folder, env, log=folder / "server.log") as server,
            httpx2.Client(base_url=server.base, timeout=60) as client,
        ):
            books, members = setup(client, args.books, args.copies, args.members)
            latencies = storm(server.base, books, members, args.seconds)
    figures = {}
    for kind, values in latencies.items():
        cuts = statistics.quantiles(values, n=100)
        figures[kind] = (len(values), cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 20_000])
    parser.add_argument("--members", type=int, default=4, help="client threads, one each")
    parser.add_argument("--books", type=int, default=10)
    parser.add_argument("--copies", type=int, default=3, help="per book")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    results = {size: run(size, args) for size in args.sizes}
    for size, figures in results.items():
        for kind, (n, p50, p95, p99) in sorted(figures.items()):
            print(
                f"history {size:>6}: {kind:<6} {n:>5} requests, p50 {p50:.1f} ms, "
                f"p95 {p95:.1f} ms, p99 {p99:.1f} ms"
            )
    first, last = results[args.sizes[0]], results[args.sizes[-1]]
    for kind in ("borrow", "return"):
        if kind in first and kind in last:
            print(f"p95 {kind}: {last[kind][2] / first[kind][2]:.2f}x")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
