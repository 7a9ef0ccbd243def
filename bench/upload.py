"""Upload and download benchmark: `make bench-upload` (or `python bench/upload.py --help`).

One server on 127.0.0.1 (started here, in a child process, with the embedded database,
UPLOADS_DIR and a fresh TMPDIR all in a temporary folder) serves the real app plus three
throw-away routes that exist only in this script. `--server granian` (the default) runs it as
`library-api serve` does: `library_api.server.serve`, Granian's embeddable server with the
same HTTP/1 settings; `--server uvicorn` runs plain uvicorn (httptools, uvloop), for comparison.
The routes:

- PUT /bench/naive/{id}: the usual FastAPI upload, `file: UploadFile = File(...)` (Starlette
  spools the form to a temporary file under TMPDIR first), then copied to UPLOADS_DIR and
  hashed in one worker-thread call with 1 MiB reads: the baseline;
- PUT /bench/discard: reads `request.stream()` and throws the bytes away: the ceiling;
- GET /bench/fileresponse/{key}: Starlette's default `FileResponse` of the stored document;
- PUT /bench/compare/{n}/{id} (with `--compare DIR...` only): the document upload of the real
  route (same parser, same service) through the `LocalStorage` of the n-th DIR/storage.py,
  another version of files/storage.py (an older commit's, say), so several writers are measured
  side by side in one server. Then only the upload rounds run (no naive path, refusals or
  downloads).

The client speaks raw HTTP/1.1 over a socket so that it is never the bottleneck. While each
request runs, a thread polls the server's VmRSS/VmHWM and the bytes it holds under TMPDIR
(named files, and unnamed O_TMPFILE ones through /proc/<pid>/fd). A middleware counts the body
bytes the app has received, to show how little a refused upload costs. The bench routes are
treated by `LimitsMiddleware` as the product's upload routes are (streamed, not held under
MAX_BODY_BYTES).
"""

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import httpx2

from server import API, login, running, server_env

MiB = 1 << 20
BOUNDARY = "bench-boundary-5b2f0c"
PDF_HEAD = b"%PDF-1.7\n"
NOISE = os.urandom(MiB)


SERVERS = ("granian", "uvicorn")


def compared_storage(folder: Path, n: int) -> Any:
    """DIR/storage.py as the module `bench_compare_<n>.storage`, so its relative imports work."""
    package = types.ModuleType(f"bench_compare_{n}")
    package.__path__ = [str(folder)]
    sys.modules[package.__name__] = package
    return importlib.import_module(f"{package.__name__}.storage")


def serve(port: int, server: str) -> None:
    from beanie import PydanticObjectId
    from fastapi import File, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool

    import library_api
    from library_api import limits
    from library_api.config import get_settings
    from library_api.files import service, storage
    from library_api.files.upload import MultipartUpload
    from library_api.main import create_app

    print(f"server: {server}, library_api from {library_api.__file__}", flush=True)
    if os.environ.get("BENCH_SYNC_ON_COMMIT") == "1":
        storage.SYNC_ON_COMMIT = True
    # The bench uploads stream like the product's: not held in memory under MAX_BODY_BYTES.
    limits.UPLOADS = re.compile(
        f"{limits.UPLOADS.pattern}|/bench/(?:naive/[^/]+|compare/\\d+/[^/]+|discard)"
    )
    settings = get_settings()
    app = create_app(settings)
    uploads = settings.uploads_dir

    def copy_and_hash(source: Any, target: Path) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        with target.open("wb") as out:
            while chunk := source.read(MiB):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    @app.put("/bench/naive/{book_id}", include_in_schema=False)
    async def bench_naive(book_id: str, file: UploadFile = File(...)) -> dict[str, Any]:
        target = uploads / f"naive-{book_id}-{time.monotonic_ns()}"
        return await run_in_threadpool(copy_and_hash, file.file, target)

    @app.put("/bench/discard", include_in_schema=False)
    async def bench_discard(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.get("/bench/fileresponse/{key}", include_in_schema=False)
    async def bench_fileresponse(key: str) -> FileResponse:
        return FileResponse(uploads / key, media_type="application/pdf")

    compared = []
    for n, folder in enumerate(filter(None, os.environ.get("BENCH_COMPARE", "").split(os.pathsep))):
        other = compared_storage(Path(folder), n)
        if os.environ.get("BENCH_SYNC_ON_COMMIT") == "1":
            other.SYNC_ON_COMMIT = True
        compared.append(other.LocalStorage(uploads))
        print(f"compared writer {n}: {other.__file__}", flush=True)
    if compared:

        @app.put("/bench/compare/{n}/{book_id}", include_in_schema=False)
        async def bench_compare(n: int, book_id: str, request: Request) -> dict[str, Any]:
            upload = MultipartUpload(request, limit=settings.max_document_bytes)
            book = await service.replace_file(
                book_id=PydanticObjectId(book_id),
                slot="document",
                incoming=upload,
                max_bytes=upload.limit,
                storage=compared[n],
            )
            assert book.document is not None
            return {"document": book.document.model_dump(mode="json")}

    consumed: dict[str, int] = {}

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        if scope["path"] == "/bench/consumed":
            return await JSONResponse(consumed)(scope, receive, send)
        key = f"{scope['method']} {scope['path']}"
        consumed[key] = consumed[f"{key} calls"] = 0

        async def counted() -> Any:
            message = await receive()
            consumed[key] += len(message.get("body", b""))
            consumed[f"{key} calls"] += message["type"] == "http.request"
            return message

        return await app(scope, counted, send)

    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            counting,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            http="httptools",
        )
        return
    from library_api.middleware import configure_logging, server_log_config
    from library_api.server import serve as serve_app

    configure_logging(settings.log_level)
    log_config = server_log_config(settings.log_level)
    # As `library-api serve` runs it (cli.serve).
    asyncio.run(
        serve_app(counting, settings=settings, host="127.0.0.1", port=port, log_config=log_config)
    )


class Probe:
    """Polls the server's memory, CPU time and bytes under TMPDIR while a request runs."""

    def __init__(self, pid: int, tmpdir: Path) -> None:
        self.pid, self.tmpdir = pid, tmpdir
        self.rss_peak = self.tmp_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self, task: str = "") -> float:
        """CPU time of the whole server, or of one of its threads (`task/<tid>/`)."""
        stat = Path(f"/proc/{self.pid}/{task}stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tmp_bytes(self) -> int:
        total = sum(p.stat().st_size for p in self.tmpdir.rglob("*") if p.is_file())
        # Unnamed (O_TMPFILE) or unlinked temporary files only show through the open fds.
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith(str(self.tmpdir)) and target.endswith("(deleted)"):
                    total += fd.stat().st_size
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rss_peak = max(self.rss_peak, self.status("VmRSS"))
            self.tmp_peak = max(self.tmp_peak, self.tmp_bytes())
            time.sleep(0.01)

    def __enter__(self) -> "Probe":
        self.rss_before, self.cpu_before = self.status("VmRSS"), self.cpu_seconds()
        self.loop_before = self.cpu_seconds(f"task/{self.pid}/")
        self.client_before = time.thread_time()  # the client runs on this thread
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client = time.thread_time() - self.client_before
        self.cpu = self.cpu_seconds() - self.cpu_before
        self.loop = self.cpu_seconds(f"task/{self.pid}/") - self.loop_before
        self.rss_growth = max(self.rss_peak - self.rss_before, 0)

    def split(self, size: int) -> str:
        per_gib = (1 << 30) / size
        return (
            f"server CPU {self.cpu * per_gib:.2f} s/GiB (event loop {self.loop * per_gib:.2f}, "
            f"other threads {(self.cpu - self.loop) * per_gib:.2f}), client "
            f"{self.client * per_gib:.2f}"
        )


Parts = Iterator[memoryview | bytes]


def generated(size: int, head: bytes) -> Parts:
    """`size` bytes: `head` then random bytes, as one 1 MiB block sent over and over."""
    view = memoryview(head + NOISE[len(head) :])
    for _ in range(size // MiB):
        yield view
    if size % MiB:
        yield view[: size % MiB]


def multipart(content: Parts, size: int) -> tuple[Parts, int]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.pdf"'
        "\r\nContent-Type: application/pdf\r\n\r\n"
    ).encode()
    trail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return chain([head], content, [trail]), len(head) + size + len(trail)


def exchange(port: int, head: str, body: Parts = iter(())) -> dict[str, Any]:
    """One HTTP/1.1 exchange on a raw socket; stops sending as soon as the server answers."""
    sent, buffer = 0, bytearray(4 * MiB)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        started = time.perf_counter()
        sock.sendall(f"{head}Host: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        with contextlib.suppress(OSError):  # the server answered and closed mid-body
            for part in body:
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(part)
                sent += len(part)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or b"\r\n\r\n"
        raw, rest = data.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(headers.get("content-length", "0"))
        kept, remaining = rest, length - len(rest)
        while remaining > 0:  # large bodies are counted, not kept
            got = sock.recv_into(buffer, min(len(buffer), remaining))
            if not got:
                raise ConnectionError("response cut short")
            if length < MiB:
                kept += buffer[:got]
            remaining -= got
        seconds = time.perf_counter() - started
    status = int(lines[0].split()[1])
    return {"status": status, "seconds": seconds, "sent": sent, "body": kept, "bytes": length}


def put(port: int, path: str, token: str | None, parts: Parts, length: int | None) -> Any:
    """A multipart PUT; `length` None sends it chunked, without Content-Length."""
    head = f"PUT {path} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
    head += f"Authorization: Bearer {token}\r\n" if token else ""
    if length is not None:
        return exchange(port, head + f"Content-Length: {length}\r\n", parts)
    framed = (f"{len(p):x}\r\n".encode() + bytes(p) + b"\r\n" for p in parts)
    return exchange(port, head + "Transfer-Encoding: chunked\r\n", chain(framed, [b"0\r\n\r\n"]))


def get(port: int, path: str, token: str | None, span: str | None = None) -> Any:
    extra = f"Authorization: Bearer {token}\r\n" if token else ""
    extra += f"Range: {span}\r\n" if span else ""
    return exchange(port, f"GET {path} HTTP/1.1\r\n{extra}")


def machine(folder: Path) -> str:
    names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
    cpu = names[0].split(":", 1)[1].strip() if names else platform.processor()
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    block, started = os.urandom(MiB), time.perf_counter()
    digest = hashlib.sha256()
    for _ in range(256):
        digest.update(block)
    hashing, started = 256 / (time.perf_counter() - started), time.perf_counter()
    with (folder / "write-test").open("wb") as out:
        for _ in range(256):
            for start in range(0, MiB, 256 * 1024):  # as the app writes
                out.write(block[start : start + 256 * 1024])
    writing = 256 / (time.perf_counter() - started)
    (folder / "write-test").unlink()
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem} MiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average "
        f"{os.getloadavg()[0]:.1f}; one thread alone: sha256 {hashing:.0f} MiB/s, "
        f"buffered writes to the bench folder {writing:.0f} MiB/s"
    )


def versions(server: str) -> str:
    from importlib.metadata import version

    return f"{server} {version(server)}" + (
        f", httptools {version('httptools')}, uvloop {version('uvloop')}"
        if server == "uvicorn"
        else ""
    )


def rate(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds


def runs(values: list[float]) -> str:
    return (
        f"{statistics.median(values):6.0f} MiB/s, min {min(values):.0f}, max {max(values):.0f} "
        f"(runs {', '.join(f'{v:.0f}' for v in values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="upload size (default 1 GiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fsync", action="store_true", help="fsync each committed upload")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="granian",
        help="granian: as `library-api serve` runs (default); uvicorn: plain uvicorn, httptools",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="folders each holding another files/storage.py (and what it imports relatively): "
        "their uploads alternate with the app's, round by round; only uploads are measured",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.server)
        return
    root = Path(tempfile.mkdtemp(prefix="library-bench-upload-"))
    size, free, note = args.size_mib * MiB, shutil.disk_usage(root).free, ""
    if free < 4 * size:
        size, note = 256 * MiB, f" (only {free // MiB} MiB free: fell back to 256 MiB)"
    print(f"machine: {machine(root)}")
    print(
        f"file {size // MiB} MiB{note}; {free // MiB} MiB free in {root}; fsync on commit: "
        f"{'yes' if args.fsync else 'no (the default)'}; server {versions(args.server)}"
    )
    (root / "tmp").mkdir()
    env = server_env(
        root,
        TMPDIR=str(root / "tmp"),
        EMBEDDED_DB_PATH=str(root / "db" / "library.sqlite3"),
        MAX_DOCUMENT_BYTES=str(size + MiB),
        ACCESS_TOKEN_MINUTES="600",
        STORAGE_BACKEND="local",
        BENCH_SYNC_ON_COMMIT="1" if args.fsync else "0",
        BENCH_COMPARE=os.pathsep.join(str(d.resolve()) for d in args.compare or []),
    )

    def server_command(port: int) -> list[str]:
        return [sys.executable, __file__, "--serve", str(port), "--server", args.server]

    try:
        with running(root, env, server_command) as server:
            run(root, server.process.pid, server.port, size, args.rounds, args.compare or [])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, pid: int, port: int, size: int, rounds: int, compare: list[Path]) -> None:
    base, tmpdir, uploads = f"http://127.0.0.1:{port}", root / "tmp", root / "uploads"
    with httpx2.Client(base_url=base) as client:
        token = login(client)
    book_id = httpx2.post(
        f"{base}{API}/books",
        json={"title": "Bench", "authors": ["Bench"], "isbn": "9780306406157"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["id"]
    expected = hashlib.sha256()
    for part in generated(size, PDF_HEAD):
        expected.update(part)
    routes = {"streaming": f"/api/v1/books/{book_id}/document"}
    for n, folder in enumerate(compare):
        routes[folder.name] = f"/bench/compare/{n}/{book_id}"
    if not compare:
        routes["naive"] = f"/bench/naive/{book_id}"
    routes["ceiling"] = "/bench/discard"
    for path in routes.values():  # warm-up
        put(port, path, token, *multipart(generated(8 * MiB, PDF_HEAD), 8 * MiB))
    hwm_before = Probe(pid, tmpdir).status("VmHWM")
    speeds: dict[str, list[float]] = {name: [] for name in routes}
    cpu: dict[str, list[float]] = {name: [] for name in routes}
    print(f"\nuploads of {size // MiB} MiB, {rounds} rounds:")
    names = list(routes)
    for round_number in range(rounds):
        # Each round starts with the next path: none always runs first, after the ceiling, etc.
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            path = routes[name]
            for leftover in uploads.glob("naive-*"):
                leftover.unlink()
            with Probe(pid, tmpdir) as probe:
                outcome = put(port, path, token, *multipart(generated(size, PDF_HEAD), size))
            assert outcome["status"] == 200, outcome["body"][:300]
            answer = json.loads(outcome["body"])
            if name != "ceiling":
                assert answer.get("document", answer)["sha256"] == expected.hexdigest()
            speeds[name].append(rate(size, outcome["seconds"]))
            cpu[name].append((probe.cpu + probe.client) * (1 << 30) / size)
            print(
                f"  {name:9} {speeds[name][-1]:5.0f} MiB/s, {probe.split(size)}; peak RSS "
                f"growth {probe.rss_growth / MiB:.1f} MiB, peak bytes under TMPDIR {probe.tmp_peak}"
            )
    for leftover in uploads.glob("naive-*"):
        leftover.unlink()
    med = {name: statistics.median(values) for name, values in speeds.items()}
    for name, values in speeds.items():
        print(f"  {name:9} median {runs(values)}")
        print(f"  {name:9} CPU s/GiB (server + client) {' '.join(f'{c:.2f}' for c in cpu[name])}")
    others = [name for name in med if name != "streaming"]
    print("  " + ", ".join(f"streaming / {n} = {med['streaming'] / med[n]:.2f}x" for n in others))
    # Server and client share the machine's CPUs: however well the work overlaps, the upload
    # cannot go faster than all of them spending the CPU seconds it measurably needs.
    need = statistics.median(cpu["streaming"])
    bound = (os.cpu_count() or 1) / need * 1024
    print(
        f"  streaming needs {need:.2f} CPU s/GiB (server + client, median): on "
        f"{os.cpu_count()} CPUs at most {bound:.0f} MiB/s = {bound / med['ceiling']:.2f}x the "
        "ceiling, even with every CPU busy all the time"
    )
    print(
        f"  server VmHWM {hwm_before / MiB:.0f} MiB before the uploads, "
        f"{Probe(pid, tmpdir).status('VmHWM') / MiB:.0f} MiB after"
    )
    print(
        f"  left under TMPDIR: {Probe(pid, tmpdir).tmp_bytes()} bytes; UPLOADS_DIR: "
        f"{sorted(p.name for p in uploads.iterdir())}"
    )
    if compare:
        return
    refusals(port, base, token, book_id, size)
    downloads(port, token, book_id, uploads, pid, tmpdir, size, rounds)


def refusals(port: int, base: str, token: str, book_id: str, size: int) -> None:
    print(
        f"\nrefused {size // MiB} MiB uploads (app: body bytes handed to the app; client: "
        "bytes the client got into its socket before the answer):"
    )
    document, cover = f"/api/v1/books/{book_id}/document", f"/api/v1/books/{book_id}/cover"
    cases = [
        ("401 no token", document, None, PDF_HEAD, True),
        ("413 Content-Length over MAX_COVER_BYTES", cover, token, PDF_HEAD, True),
        ("415 not a PDF", document, token, b"<html>", True),
        ("413 chunked JPEG, no Content-Length", cover, token, b"\xff\xd8\xff\xe0", False),
    ]
    for label, path, auth, head, declared in cases:
        parts, length = multipart(generated(size, head), size)
        outcome = put(port, path, auth, parts, length if declared else None)
        counts = httpx2.get(f"{base}/bench/consumed").json()
        print(
            f"  {label:40} -> {outcome['status']}: app {counts[f'PUT {path}'] / 1024:.1f} KiB"
            f" in {counts[f'PUT {path} calls']} receive(s), client "
            f"{outcome['sent'] / 1024:.0f} KiB, {outcome['seconds'] * 1000:.0f} ms"
        )


def downloads(
    port: int,
    token: str,
    book_id: str,
    uploads: Path,
    pid: int,
    tmpdir: Path,
    size: int,
    rounds: int,
) -> None:
    key = next(p.name for p in uploads.iterdir() if p.suffix == ".pdf")
    document, start = f"/api/v1/books/{book_id}/document", size // 4
    cases = {
        "GET document (200)": (document, token, None),
        f"GET document, Range bytes={start}- (206)": (document, token, f"bytes={start}-"),
        "default FileResponse (200)": (f"/bench/fileresponse/{key}", None, None),
    }
    print(f"\ndownloads of the {size // MiB} MiB document, {rounds} rounds:")
    med = {}
    for label, (path, auth, span) in cases.items():
        speeds, growth = [], 0
        for _ in range(rounds):
            with Probe(pid, tmpdir) as probe:
                outcome = get(port, path, auth, span)
            assert outcome["status"] == (206 if span else 200)
            speeds.append(rate(outcome["bytes"], outcome["seconds"]))
            growth = max(growth, probe.rss_growth)
        med[label] = statistics.median(speeds)
        print(f"  {label:42} {runs(speeds)}, peak RSS growth {growth / MiB:.1f} MiB")
    ratio = med["GET document (200)"] / med["default FileResponse (200)"]
    print(f"  ours / FileResponse = {ratio:.2f}x")


if __name__ == "__main__":
    main()
