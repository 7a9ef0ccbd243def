"""Borrow/return storm benchmark: `make bench-borrow` (or `python bench/borrow.py --help`).

1. Starts `library-api serve` on 127.0.0.1 (a free port) with the embedded database in a
   temporary folder; creates books with a few copies each and members (through the API).
2. Every member, on its own client thread, borrows a random book and, when it got one,
   returns it at once, for a bounded time. Prints requests/s and p50/p99 per kind of request,
   checks no loan is left and every book is back to all its copies.
3. Stops the server, runs `library-api check-consistency` on the same database file, then
   opens it in-process with a PyMongo command listener and counts the database commands of
   each kind of borrow and return (target: at most 3 for the circulation part of a borrow
   in the common case; the bearer token's session and user look-ups are counted apart).
"""

import argparse
import contextlib
import io
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
from pymongo import monitoring
from starlette.testclient import TestClient

from server import ADMIN_EMAIL, ADMIN_PASSWORD, API, bearer, running, server_env, use_in_process

PASSWORD = "bench member passphrase"
# Logins are set-up here, not what is measured: keep them cheap.
CHEAP_LOGINS = {"ARGON2_MEMORY_KIB": "64", "ARGON2_TIME_COST": "1"}
AUTH = {("aggregate", "sessions"), ("update", "sessions")}


def isbn13(serial: int) -> str:
    body = f"978{serial:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def setup(client: Any, books: int, copies: int, members: int) -> tuple[list[str], list[Any]]:
    """Books and logged-in members, made through the API; (book ids, member headers)."""
    admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    book_ids = []
    for n in range(books):
        created = client.post(
            f"{API}/books",
            json={
                "title": f"Storm {n}",
                "authors": ["Bench"],
                "isbn": isbn13(n + 1),
                "total_copies": copies,
            },
            headers=admin,
        )
        created.raise_for_status()
        book_ids.append(created.json()["id"])

    def member(n: int) -> dict[str, str]:
        email = f"reader{n}@example.com"
        client.post(
            f"{API}/users",
            json={"name": f"Reader {n}", "email": email, "password": PASSWORD},
            headers=admin,
        ).raise_for_status()
        return bearer(client, email, PASSWORD)

    with ThreadPoolExecutor(8) as pool:
        return book_ids, list(pool.map(member, range(members)))


def storm(
    base: str, books: list[str], members: list[dict[str, str]], seconds: float, limit: int
) -> dict[str, Any]:
    """Each member borrows a random book and returns it at once, until time or requests run out."""
    latencies: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    sent = [0]
    stop = time.monotonic() + seconds

    def timed(client: httpx2.Client, path: str) -> tuple[httpx2.Response, float]:
        began = time.perf_counter()
        response = client.post(path)
        return response, time.perf_counter() - began

    def worker(n: int) -> None:
        rng = random.Random(n)
        with httpx2.Client(base_url=base, headers=members[n], timeout=60) as client:
            while time.monotonic() < stop:
                with lock:
                    if sent[0] >= limit:
                        return
                    sent[0] += 2
                book = rng.choice(books)
                response, took = timed(client, f"{API}/books/{book}/borrow")
                kind = "borrow" if response.status_code == 201 else "borrow refused"
                code = response.json().get("code", "") if response.status_code != 201 else ""
                back = None
                if response.status_code == 201:
                    back = timed(client, f"{API}/books/{book}/return")
                with lock:
                    latencies[kind].append(took)
                    outcomes[f"{response.status_code} {code}".strip()] += 1
                    if back is not None:
                        latencies["return"].append(back[1])
                        outcomes[f"return {back[0].status_code}"] += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(len(members)) as pool:
        list(pool.map(worker, range(len(members))))
    elapsed = time.perf_counter() - began
    figures: dict[str, Any] = {"elapsed": elapsed, "outcomes": outcomes}
    total = sum(len(v) for v in latencies.values())
    figures["rps"] = total / elapsed
    figures["requests"] = total
    for kind, values in latencies.items():
        cuts = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
        figures[kind] = (len(values), cuts[49] * 1000, cuts[98] * 1000)
    return figures


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


def use_database(folder: Path) -> None:
    use_in_process(server_env(folder, **CHEAP_LOGINS))


def check_consistency(folder: Path) -> str:
    from library_api.cli import main as cli

    use_database(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            cli(["check-consistency"])
        except SystemExit as exc:
            return f"DRIFT (exit {exc.code}): {out.getvalue().strip()}"
    return out.getvalue().strip()


def round_trips(folder: Path, samples: int) -> dict[str, tuple[float, float, Counter[str]]]:
    """Database commands per request of each kind, from a PyMongo listener in an in-process app.

    Returns, per scenario: (mean circulation commands, mean auth commands, command mix).
    """
    use_database(folder)
    listener = Commands()
    monitoring.register(listener)  # before the app creates its client
    from library_api import clock
    from library_api.main import create_app

    result: dict[str, tuple[float, float, Counter[str]]] = {}
    with TestClient(create_app()) as client:
        books, members = setup_more(client, samples)
        per: dict[str, list[Counter[tuple[str, str]]]] = defaultdict(list)

        def measure(scenario: str, call: Callable[[], Any], expect: int) -> None:
            listener.seen.clear()
            response = call()
            assert response.status_code == expect, (scenario, response.text)
            per[scenario].append(Counter(listener.seen))

        def post(path: str, headers: dict[str, str]) -> Callable[[], Any]:
            return lambda: client.post(f"{API}{path}", headers=headers)

        for i in range(samples):
            member, book, other = members[i], books[i], books[samples + i]
            measure(
                "borrow: no loans yet, copy on the shelf",
                post(f"/books/{book}/borrow", member),
                201,
            )
            measure("borrow: holds other loans", post(f"/books/{other}/borrow", member), 201)
            measure("return: nobody waiting", post(f"/books/{other}/return", member), 200)
            measure(
                "borrow refused: no copy left", post(f"/books/{book}/borrow", members[i + 1]), 409
            )
            waiting = members[i + 1]
            client.post(f"{API}/books/{book}/reservations", headers=waiting).raise_for_status()
            measure("return: a reader waiting", post(f"/books/{book}/return", member), 200)
            measure("borrow: the held copy", post(f"/books/{book}/borrow", waiting), 201)
            client.post(f"{API}/books/{book}/return", headers=waiting).raise_for_status()
            clock.advance(timedelta(seconds=61))  # keeps session touches in the mix, as live
        for scenario, counters in per.items():
            circulation = [sum(n for k, n in c.items() if k not in AUTH) for c in counters]
            auth = [sum(n for k, n in c.items() if k in AUTH) for c in counters]
            mix: Counter[str] = Counter()
            for c in counters:
                mix.update(
                    f"{cmd} {coll}"
                    for (cmd, coll), n in c.items()
                    if (cmd, coll) not in AUTH
                    for _ in range(n)
                )
            result[scenario] = (statistics.mean(circulation), statistics.mean(auth), mix)
    return result


def setup_more(client: TestClient, samples: int) -> tuple[list[str], list[dict[str, str]]]:
    """One-copy books and fresh members for the round-trip count, made in-process."""
    admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    books = []
    for n in range(2 * samples):
        created = client.post(
            f"{API}/books",
            json={"title": f"Count {n}", "authors": ["Bench"], "isbn": isbn13(900_000 + n)},
            headers=admin,
        )
        created.raise_for_status()
        books.append(created.json()["id"])
    members = []
    for n in range(samples + 1):
        email = f"counted{n}@example.com"
        client.post(
            f"{API}/users",
            json={"name": f"Counted {n}", "email": email, "password": PASSWORD},
            headers=admin,
        ).raise_for_status()
        members.append(bearer(client, email, PASSWORD))
    return books, members


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=40, help="client threads, one each")
    parser.add_argument("--books", type=int, default=10)
    parser.add_argument("--copies", type=int, default=3, help="per book")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument(
        "--samples", type=int, default=10, help="per round-trip scenario (at most 12)"
    )
    args = parser.parse_args()
    args.samples = min(args.samples, 12)  # each moves the clock a minute; tokens live 15

    with tempfile.TemporaryDirectory(prefix="bench-borrow-") as tmp:
        folder = Path(tmp)
        env = server_env(folder, **CHEAP_LOGINS)
        with (
            running(folder, env, log=folder / "server.log") as server,
            httpx2.Client(base_url=server.base, timeout=60) as client,
        ):
            books, members = setup(client, args.books, args.copies, args.members)
            figures = storm(server.base, books, members, args.seconds, args.max_requests)
            admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
            left = client.get(f"{API}/loans", params={"status": "active"}, headers=admin)
            shelves = [
                client.get(f"{API}/books/{b}", headers=admin).json()["available_copies"]
                for b in books
            ]
        print(
            f"storm: {args.members} members, {args.books} books x {args.copies} copies, "
            f"{figures['elapsed']:.1f} s: {figures['requests']} requests, "
            f"{figures['rps']:.1f} req/s"
        )
        for kind in ("borrow", "borrow refused", "return"):
            if kind in figures:
                n, p50, p99 = figures[kind]
                print(f"  {kind}: {n} requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"  outcomes: {dict(figures['outcomes'])}")
        print(
            f"  afterwards: {left.json()['total']} active loans, "
            f"shelves {'all full' if all(s == args.copies for s in shelves) else shelves}"
        )
        print(f"check-consistency: {check_consistency(folder)}")
        for scenario, (circulation, auth, mix) in round_trips(folder, args.samples).items():
            commands = ", ".join(f"{k} x{n / args.samples:g}" for k, n in sorted(mix.items()))
            print(
                f"{scenario}: {circulation:.1f} database commands (+{auth:.1f} for the "
                f"token's session and user): {commands}"
            )
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
