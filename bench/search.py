"""Catalogue search benchmark: `make bench-search` (or `python bench/search.py --help`).

1. Starts `library-api serve` on 127.0.0.1 (a free port) with the embedded database in a
   temporary folder, and seeds it with N generated books through POST /books/import (or
   starts from a copy of `--database`, e.g. one `bench/import_rate.py --keep` left).
2. Fires 1-, 2- and 3-word `q` searches, `author=` searches, filtered searches (`q`, `genre`,
   `available=true`) and the unfiltered list from client threads for a bounded time per kind,
   `--repeats` times, and prints requests/s and p50/p95/p99 latency.
3. Stops the server, opens the same database in-process with a PyMongo command listener and
   counts the database round trips each search makes (one `aggregate` for a search matching
   at most 1,000 books, else a `find` or two and at most one `count`, on `books`), and
   prints the database's plan for a search.

`--mongodb-url mongodb://…` runs the same against a real MongoDB (a throw-away database,
dropped at the end) instead of the embedded one. Everything runs on loopback and stops by
itself; the figures go into bench/README.md.
"""

import argparse
import importlib.metadata
import os
import platform
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
from pymongo import MongoClient, monitoring
from starlette.testclient import TestClient

from server import bearer, running, server_env, use_in_process

HEADER = "title,authors,isbn,published_date,genres,total_copies\n"


def _words(text: str) -> list[str]:
    return text.split()


TITLE_WORDS = _words(
    "river night garden winter silent empire shadow letters journey island crown "
    "stone mountain harbour daughter soldier summer forest kingdom voyage mirror "
    "castle storm memory orchard lantern desert widow secret ocean republic"
)
FIRST_NAMES = _words(
    "Anna Boris Clara Dmitri Élodie François Greta Håkon Inés José Katarzyna Léon "
    "Marta Niamh Óscar Pavel Renée Søren Tomás Ursula"
)
LAST_NAMES = _words(
    "García Müller Novák Ólafsson Kowalski Lindqvist Moreau Rossi Petrov Nakamura "
    "Okafor Silva Dubois Jansen Horvat Costa Nilsen Sato Weber Fischer"
)
GENRES = ["Novel", "Poetry", "History", "Science fiction", "Drama", "Essay", "Mystery"]


def isbn13(serial: int) -> str:
    body = f"978{serial:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def book_rows(count: int, rng: random.Random, start: int = 0) -> list[str]:
    rows = []
    for n in range(count):
        title = " ".join(rng.sample(TITLE_WORDS, rng.randint(2, 4))).title()
        authors = ";".join(
            f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(rng.randint(1, 2))
        )
        date = f"{rng.randint(1800, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        genres = ";".join(rng.sample(GENRES, rng.randint(1, 2)))
        copies = rng.randint(1, 5)
        rows.append(f'"{title}","{authors}",{isbn13(start + n + 1)},{date},"{genres}",{copies}')
    return rows


def queries(words: int, rng: random.Random, count: int = 200) -> list[str]:
    """Realistic prefixes: a title word, an author's name, sometimes an ISBN stem."""
    vocabulary = TITLE_WORDS + [n.lower() for n in FIRST_NAMES + LAST_NAMES]
    made = []
    for _ in range(count):
        picked = rng.sample(vocabulary, words)
        made.append(" ".join(w[: rng.randint(3, len(w))] if len(w) > 3 else w for w in picked))
    return made


def seed(base: str, headers: dict[str, str], count: int, rng: random.Random) -> float:
    started = time.perf_counter()
    rows = book_rows(count, rng)
    with httpx2.Client(base_url=base, headers=headers, timeout=600) as client:
        for start in range(0, len(rows), 1000):
            content = HEADER + "\n".join(rows[start : start + 1000]) + "\n"
            files = {"file": ("books.csv", content.encode(), "text/csv")}
            report = client.post("/api/v1/books/import", files=files).json()
            if report.get("errors") or report.get("created") is None:
                raise SystemExit(f"seeding failed: {str(report)[:300]}")
    return time.perf_counter() - started


def kinds_of_search(rng: random.Random) -> dict[str, list[dict[str, str]]]:
    """The query parameters of each kind of search, 200 of each."""
    names = [n.lower() for n in LAST_NAMES]
    return {
        "1 word": [{"q": q} for q in queries(1, rng)],
        "2 words": [{"q": q} for q in queries(2, rng)],
        "3 words": [{"q": q} for q in queries(3, rng)],
        "author": [{"author": rng.choice(names)[: rng.randint(3, 5)]} for _ in range(200)],
        "filtered": [
            {"q": q, "genre": rng.choice(GENRES), "available": "true"} for q in queries(1, rng)
        ],
        "list": [{}],
    }


def load(
    base: str,
    headers: dict[str, str],
    qs: list[dict[str, str]],
    threads: int,
    seconds: float,
) -> dict[str, float]:
    """Searches from `threads` clients for `seconds`; latency percentiles and throughput."""
    latencies: list[float] = []
    totals: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(offset: int) -> None:
        with httpx2.Client(base_url=base, headers=headers, timeout=30) as client:
            i = offset
            while time.monotonic() < stop:
                q = qs[i % len(qs)]
                i += threads
                began = time.perf_counter()
                response = client.get("/api/v1/books", params=q)
                took = time.perf_counter() - began
                response.raise_for_status()
                with lock:
                    latencies.append(took)
                    totals.append(response.json()["total"])

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "mean_hits": statistics.mean(totals),
    }


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.seen.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _stages(plan: Any) -> list[str]:
    """The stages of an explain plan, outermost first, with the index each scan uses."""
    found: list[str] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            name = plan["stage"]
            found.append(f"{name}({plan['indexName']})" if "indexName" in plan else name)
        for value in plan.values():
            found += _stages(value)
    elif isinstance(plan, list):
        for value in plan:
            found += _stages(value)
    return found


def query_plan(client: TestClient, q: str) -> str:
    from library_api.books import terms

    query = {"$and": terms.prefix_clauses("search_terms", terms.query_words(q, isbn=True))}
    database = client.app.state.runtime.database.db  # type: ignore[attr-defined]
    find = {"find": "books", "filter": query, "sort": {"title_key": 1, "_id": 1}, "limit": 20}

    async def explain() -> dict[str, Any]:
        result: dict[str, Any] = await database.command("explain", find, verbosity="queryPlanner")
        return result

    result = client.portal.call(explain)
    winning = result.get("queryPlanner", {}).get("winningPlan")
    if winning is not None:
        return " > ".join(_stages(winning))
    # mongoeco describes its plan in its own terms.
    return f"{result.get('engine')} engine, {result.get('strategy')} strategy: {result.get('plan')}"


def round_trips(
    folder: Path, mongodb_url: str | None, samples: dict[str, list[dict[str, str]]]
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Database commands per search, counted by a PyMongo listener in an in-process app."""
    use_in_process(server_env(folder, mongodb_url))
    listener = Commands()
    monitoring.register(listener)  # before the app creates its client
    from library_api.main import create_app

    result: dict[str, dict[str, float]] = {}
    plans: dict[str, str] = {}
    with TestClient(create_app()) as client:
        headers = bearer(client)
        for words, qs in samples.items():
            per_request: list[Counter[tuple[str, str]]] = []
            for q in qs:
                listener.seen.clear()
                client.get("/api/v1/books", params=q, headers=headers).raise_for_status()
                per_request.append(Counter(listener.seen))
            books = [sum(n for (_, coll), n in c.items() if coll == "books") for c in per_request]
            finds = [c[("find", "books")] for c in per_request]
            counts = [c[("count", "books")] for c in per_request]
            aggregates = [c[("aggregate", "books")] for c in per_request]
            result[words] = {
                "books_max": max(books),
                "aggregates_max": max(aggregates),
                "finds_max": max(finds),
                "counts_max": max(counts),
                "counts_mean": statistics.mean(counts),
                "all_mean": statistics.mean(sum(c.values()) for c in per_request),
            }
        for qs in samples.values():
            if "q" in qs[0]:
                plans[qs[0]["q"]] = query_plan(client, qs[0]["q"])
    return result, plans


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        engine = f", mongoeco {importlib.metadata.version('mongoeco')}"
    except importlib.metadata.PackageNotFoundError:
        engine = ""
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}{engine}"


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.0f} / {statistics.median(ordered):.0f} / {ordered[-1]:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=1000)
    parser.add_argument("--database", type=Path, help="a copy of this seeded SQLite file")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="per query kind")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over every kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mongodb-url", help="a real MongoDB instead of the embedded one")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        folder = Path(tmp)
        env = server_env(folder, args.mongodb_url)
        if args.database:
            shutil.copyfile(args.database, folder / "library.sqlite3")
        with running(folder, env, log=folder / "server.log") as server:
            base = server.base
            with httpx2.Client(base_url=base) as client:
                headers = bearer(client)
                if not args.database:
                    took = seed(base, headers, args.books, rng)
                    print(f"seeded {args.books} books through POST /books/import in {took:.1f} s")
                books = client.get("/api/v1/books", headers=headers).json()["total"]
            print(f"{books} books in the catalogue")
            kinds = kinds_of_search(rng)
            p95s: dict[str, list[float]] = {kind: [] for kind in kinds}
            for run in range(args.repeats):
                for kind, qs in kinds.items():
                    figures = load(base, headers, qs, args.threads, args.seconds)
                    p95s[kind].append(figures["p95_ms"])
                    print(
                        f"run {run + 1} {kind}: {figures['rps']:.1f} req/s,"
                        f" p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms,"
                        f" p99 {figures['p99_ms']:.1f} ms ({figures['requests']:.0f} requests,"
                        f" {figures['mean_hits']:.1f} hits on average)"
                    )
            for kind, values in p95s.items():
                print(
                    f"{kind}: p95 min / median / max over {args.repeats} runs: {_spread(values)} ms"
                )
        try:
            trips, plans = round_trips(
                folder, args.mongodb_url, {k: qs[:30] for k, qs in kinds.items()}
            )
        finally:
            if args.mongodb_url:
                with MongoClient(args.mongodb_url) as mongo:
                    mongo.drop_database(env["MONGODB_DB"])
        for kind, t in trips.items():
            print(
                f"{kind}: at most {t['books_max']:.0f} commands on books per search "
                f"(aggregate ≤ {t['aggregates_max']:.0f}, find ≤ {t['finds_max']:.0f}, "
                f"count ≤ {t['counts_max']:.0f}, "
                f"count needed in {t['counts_mean']:.0%} of searches); "
                f"{t['all_mean']:.1f} commands per request in all (with the auth look-ups)"
            )
        for q, plan in plans.items():
            print(f"plan for q={q!r}: {plan}")
    database = "MongoDB at " + args.mongodb_url if args.mongodb_url else "embedded mongoeco"
    load_shape = f"{args.threads} client threads, {args.seconds:g} s per kind"
    print(f"machine: {machine()}; {database}; {load_shape}")


if __name__ == "__main__":
    main()
