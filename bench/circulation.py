"""Borrow and return latency on a seeded catalogue: `python bench/circulation.py --database F`.

Starts `library-api serve` on 127.0.0.1 (a free port) on a copy of `--database` (a catalogue
seeded before, e.g. by `bench/import_rate.py --keep`), picks `--sample` random books from it
(random pages of the list), creates as many members as the largest thread count (through the
API), then, for each `--threads` count and `--repeats` times, has that many members, each on
its own client thread, borrow a random book of the sample and, when they got a copy, return it
at once, for `--seconds`. Prints the p50/p95 of borrows (201), refused borrows and returns per
run, and the min / median / max of each over the runs; checks no loan is left at the end.
"""

import argparse
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2

from borrow import CHEAP_LOGINS, PASSWORD
from search import machine
from server import API, bearer, running, server_env

KINDS = ("borrow", "borrow refused", "return")


def sample_books(client: httpx2.Client, admin: dict[str, str], total: int, count: int) -> list[str]:
    """About `count` distinct book ids from random pages of 100 of the unfiltered list."""
    rng = random.Random(total)
    pages = list(range(1, (total + 99) // 100 + 1))
    rng.shuffle(pages)
    ids: list[str] = []
    for page in pages:
        response = client.get(
            f"{API}/books", params={"page": page, "page_size": 100}, headers=admin
        )
        response.raise_for_status()
        items = response.json()["items"]
        ids += [book["id"] for book in rng.sample(items, min(len(items), 25))]
        if len(ids) >= count:
            break
    return ids[:count]


def members(client: httpx2.Client, admin: dict[str, str], count: int) -> list[dict[str, str]]:
    """`count` new members (unique e-mail addresses, so a file can be used twice), logged in."""
    tag = uuid.uuid4().hex[:8]
    made = []
    for n in range(count):
        email = f"circ-{tag}-{n}@example.com"
        client.post(
            f"{API}/users",
            json={"name": f"Circulation {n}", "email": email, "password": PASSWORD},
            headers=admin,
        ).raise_for_status()
        made.append(bearer(client, email, PASSWORD))
    return made


def storm(
    base: str, books: list[str], readers: list[dict[str, str]], seconds: float, seed: int
) -> dict[str, Any]:
    """Each reader borrows a random book and returns it at once, until `seconds` are up."""
    latencies: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def timed(client: httpx2.Client, path: str) -> tuple[int, float]:
        began = time.perf_counter()
        response = client.post(path)
        return response.status_code, time.perf_counter() - began

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with httpx2.Client(base_url=base, headers=readers[n], timeout=60) as client:
            while time.monotonic() < stop:
                book = rng.choice(books)
                status, took = timed(client, f"{API}/books/{book}/borrow")
                back = timed(client, f"{API}/books/{book}/return") if status == 201 else None
                with lock:
                    latencies["borrow" if status == 201 else "borrow refused"].append(took)
                    outcomes[f"borrow {status}"] += 1
                    if back is not None:
                        latencies["return"].append(back[1])
                        outcomes[f"return {back[0]}"] += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(len(readers)) as pool:
        list(pool.map(worker, range(len(readers))))
    elapsed = time.perf_counter() - began
    figures: dict[str, Any] = {"elapsed": elapsed, "outcomes": outcomes}
    for kind, values in latencies.items():
        ms = sorted(v * 1000 for v in values)
        cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
        figures[kind] = (len(ms), cuts[49], cuts[94], ms[-1])
    return figures


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.0f} / {statistics.median(ordered):.0f} / {ordered[-1]:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, required=True, help="a seeded SQLite file")
    parser.add_argument("--threads", default="1,4", help="client thread counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per thread count")
    parser.add_argument("--sample", type=int, default=200, help="books to borrow from")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-circulation-") as tmp:
        folder = Path(tmp)
        env = server_env(folder, **CHEAP_LOGINS)
        shutil.copyfile(args.database, folder / "library.sqlite3")
        with (
            running(folder, env, log=folder / "server.log") as server,
            httpx2.Client(base_url=server.base, timeout=120) as client,
        ):
            admin = bearer(client)
            total = client.get(f"{API}/books", headers=admin).json()["total"]
            books = sample_books(client, admin, total, args.sample)
            readers = members(client, admin, max(counts))
            print(f"{total} books in the catalogue; borrowing from {len(books)} of them")
            results: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
            for run in range(args.repeats):
                for threads in counts:
                    figures = storm(
                        server.base, books, readers[:threads], args.seconds, run * 100 + threads
                    )
                    results[threads].append(figures)
                    parts = [
                        f"{kind} {figures[kind][0]}: p50 {figures[kind][1]:.0f} ms,"
                        f" p95 {figures[kind][2]:.0f} ms, max {figures[kind][3]:.0f} ms"
                        for kind in KINDS
                        if kind in figures
                    ]
                    print(
                        f"run {run + 1}, {threads} thread(s), {figures['elapsed']:.1f} s: "
                        + "; ".join(parts)
                        + f" ({dict(figures['outcomes'])})"
                    )
            left = client.get(f"{API}/loans", params={"status": "active"}, headers=admin)
            left.raise_for_status()
        for threads, runs in results.items():
            for kind in KINDS:
                seen = [r[kind] for r in runs if kind in r]
                if not seen:
                    continue
                print(
                    f"{threads} thread(s), {kind}: p50 min / median / max "
                    f"{_spread([s[1] for s in seen])} ms, p95 {_spread([s[2] for s in seen])} ms "
                    f"({sum(s[0] for s in seen)} requests in {len(seen)} runs)"
                )
        print(f"afterwards: {left.json()['total']} active loans")
    shape = f"{args.seconds:g} s per run, {args.repeats} runs per thread count"
    print(f"machine: {machine()}; embedded mongoeco; {shape}")


if __name__ == "__main__":
    main()
