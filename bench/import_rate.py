"""CSV import benchmark: `python bench/import_rate.py [--rows 5000]`.

Starts `library-api serve` on 127.0.0.1 (a free port) with the embedded database in a
temporary folder (or a copy of `--database`, a catalogue seeded before), then sends one
N-row file to POST /books/import, and while it runs keeps asking, each from its own client:
`GET /health` every 0.2 s, a 1- or 2-word search every 0.5 s and the unfiltered list every
2 s (whose total tells how far the import got). Prints the import's time, when each 1,000th
book was there, and the latencies of the requests answered meanwhile. `--no-probes` sends
the import alone. `--keep PATH` copies the database afterwards, for `bench/search.py
--database PATH`.
"""

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2

from search import HEADER, book_rows, machine, queries
from server import bearer, running, server_env


def _probe(
    base: str,
    headers: dict[str, str],
    every: float,
    stop: threading.Event,
    request: Any,
    seen: list[tuple[float, float, int]],
) -> None:
    """`request(client)` every `every` seconds until `stop`: (when, latency, total or 0).

    Signs in again when the token has expired (that answer is not counted)."""
    with httpx2.Client(base_url=base, headers=headers, timeout=60) as client:
        while not stop.is_set():
            began = time.perf_counter()
            response = request(client)
            took = time.perf_counter() - began
            if response.status_code == 401:  # the token lives 15 minutes, an import longer
                client.headers.update(bearer(client))
                continue
            response.raise_for_status()
            total = response.json().get("total", 0) if response.content else 0
            seen.append((began, took, int(total)))
            stop.wait(max(0.0, every - took))


def _cpu_seconds(pid: int) -> float:
    """The user and system time a process has used so far (Linux /proc): the machine is
    shared, so the server's own CPU time is steadier than the import's wall-clock time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _figures(name: str, seen: list[tuple[float, float, int]]) -> str:
    times = sorted(took * 1000 for _, took, _ in seen)
    if len(times) < 2:
        return f"{name}: {len(times)} answers"
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return (
        f"{name}: {len(times)} answers, p50 {cuts[49]:.0f} ms, p95 {cuts[94]:.0f} ms,"
        f" max {times[-1]:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--first-serial", type=int, default=0, help="ISBN serials start here")
    parser.add_argument("--database", type=Path, help="start from a copy of this SQLite file")
    parser.add_argument("--keep", type=Path, help="copy the database here afterwards")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--no-probes", action="store_true", help="only the import: no other client meanwhile"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = book_rows(args.rows, rng, start=args.first_serial)
    content = (HEADER + "\n".join(rows) + "\n").encode()
    searches = queries(1, rng, 50) + queries(2, rng, 50)

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        env = server_env(folder)
        if args.database:
            shutil.copyfile(args.database, folder / "library.sqlite3")
        with running(folder, env, log=folder / "server.log") as server:
            with httpx2.Client(base_url=server.base) as client:
                headers = bearer(client)
                before = client.get("/api/v1/books", headers=headers).json()["total"]
            stop = threading.Event()
            health: list[tuple[float, float, int]] = []
            search: list[tuple[float, float, int]] = []
            listing: list[tuple[float, float, int]] = []
            turn = iter(range(10**9))
            probes = [
                (0.2, lambda c: c.get("/health"), health),
                (
                    0.5,
                    lambda c: c.get(
                        "/api/v1/books", params={"q": searches[next(turn) % len(searches)]}
                    ),
                    search,
                ),
                (2.0, lambda c: c.get("/api/v1/books", params={"page_size": 1}), listing),
            ]
            threads = [
                threading.Thread(target=_probe, args=(server.base, headers, e, stop, r, s))
                for e, r, s in ([] if args.no_probes else probes)
            ]
            with httpx2.Client(base_url=server.base, headers=headers, timeout=3600) as client:
                began = time.perf_counter()
                cpu_began = _cpu_seconds(server.process.pid)
                for thread in threads:
                    thread.start()
                files = {"file": ("books.csv", content, "text/csv")}
                response = client.post("/api/v1/books/import", files=files)
                took = time.perf_counter() - began
                cpu = _cpu_seconds(server.process.pid) - cpu_began
                stop.set()
                for thread in threads:
                    thread.join()
            report = response.json()
            if response.status_code != 200 or report.get("errors"):
                raise SystemExit(f"import failed: {response.status_code} {str(report)[:300]}")
        if args.keep:
            shutil.copyfile(folder / "library.sqlite3", args.keep)

    print(
        f"imported {args.rows} rows into a catalogue of {before} books in {took:.1f} s "
        f"({args.rows / took:.1f} rows/s): created {report['created']},"
        f" skipped {report['skipped']}; the server used {cpu:.1f} s of CPU meanwhile"
    )
    marks = []
    for mark in range(1000, args.rows + 1, 1000):
        reached = next((when for when, _, total in listing if total >= before + mark), None)
        if reached is not None:
            marks.append(f"{mark}: {reached - began:.0f} s")
    print("books there (from the list probe, every 2 s): " + ", ".join(marks))
    for name, seen in (("/health", health), ("search", search), ("unfiltered list", listing)):
        print("during the import, " + _figures(name, seen))
    print(f"machine: {machine()}; embedded mongoeco")


if __name__ == "__main__":
    main()
