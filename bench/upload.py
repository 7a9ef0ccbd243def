"""Upload and download benchmark: `make bench-upload` (or `python bench/upload.py --help`).

One uvicorn server on 127.0.0.1 (started here, in a child process, with the embedded database,
UPLOADS_DIR and a fresh TMPDIR all in a temporary folder) serves the real app plus three
throw-away routes that exist only in this script:

- PUT /bench/naive/{id}: the usual FastAPI upload, `file: UploadFile = File(...)` (Starlette
  spools the form to a temporary file under TMPDIR first), then copied to UPLOADS_DIR and
  hashed in one worker-thread call with 1 MiB reads: the baseline;
- PUT /bench/discard: reads `request.stream()` and throws the bytes away: the ceiling;
- GET /bench/fileresponse/{key}: Starlette's default `FileResponse` of the stored document.

The client speaks raw HTTP/1.1 over a socket so that it is never the bottleneck. While each
request runs, a thread polls the server's VmRSS/VmHWM and the bytes it holds under TMPDIR
(named files, and unnamed O_TMPFILE ones through /proc/<pid>/fd). A middleware counts the body
bytes the app has received, to show how little a refused upload costs.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

MiB = 1 << 20
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench admin passphrase"
BOUNDARY = "bench-boundary-5b2f0c"


# ---------------------------------------------------------------- server side (child process)


def serve(port: int) -> None:
    import uvicorn
    from fastapi import File, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool

    from library_api.config import get_settings
    from library_api.files import storage
    from library_api.main import create_app

    if os.environ.get("BENCH_SYNC_ON_COMMIT") == "1":
        storage.SYNC_ON_COMMIT = True
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

    uvicorn.run(counting, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- client side


class Probe:
    """Polls the server's memory and its bytes under TMPDIR while a request runs."""

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

    def tmp_bytes(self) -> int:
        total = sum(p.stat().st_size for p in self.tmpdir.rglob("*") if p.is_file())
        # Unnamed (O_TMPFILE) or unlinked temporary files only show through the open fds.
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                target = str(fd.readlink())
                if target.startswith(str(self.tmpdir)) and target.endswith("(deleted)"):
                    total += fd.stat().st_size
            except OSError:
                continue
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time of every thread of the server so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rss_peak = max(self.rss_peak, self.status("VmRSS"))
            self.tmp_peak = max(self.tmp_peak, self.tmp_bytes())
            time.sleep(0.01)

    def __enter__(self) -> "Probe":
        self.rss_before = self.status("VmRSS")
        self.hwm_before = self.status("VmHWM")
        self.cpu_before = self.cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.hwm_after = self.status("VmHWM")
        self.cpu = self.cpu_seconds() - self.cpu_before

    @property
    def rss_growth(self) -> int:
        return max(self.rss_peak - self.rss_before, 0)


def pdf_blocks(size: int) -> tuple[bytes, int, int]:
    """A generated PDF as one random 1 MiB block repeated: (block, whole blocks, tail)."""
    block = b"%PDF-1.7\n" + os.urandom(MiB - 9)
    return block, size // MiB, size % MiB


def file_chunks(block: bytes, whole: int, tail: int) -> Iterator[memoryview]:
    view = memoryview(block)
    for _ in range(whole):
        yield view
    if tail:
        yield view[:tail]


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(min(4 * MiB, length - len(body)))
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def upload(
    port: int, path: str, token: str | None, parts: Iterator[memoryview | bytes], length: int
) -> dict[str, Any]:
    """Send a multipart PUT, stopping as soon as the server answers; returns what happened."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        started = time.perf_counter()
        sock.sendall(request)
        try:
            for part in parts:
                if _readable(sock):
                    break
                sock.sendall(part)
                sent += len(part)
        except OSError:
            pass  # the server answered and closed while we were still sending
        status, _, body = read_response(sock)
        seconds = time.perf_counter() - started
    return {"status": status, "seconds": seconds, "sent": sent, "body": body}


def _readable(sock: socket.socket) -> bool:
    import select

    return bool(select.select([sock], [], [], 0)[0])


def multipart_parts(
    block: bytes, whole: int, tail: int, filename: str
) -> tuple[Iterator[memoryview | bytes], int]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    trail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def parts() -> Iterator[memoryview | bytes]:
        yield head
        yield from file_chunks(block, whole, tail)
        yield trail

    return parts(), len(head) + whole * len(block) + tail + len(trail)


def download(
    port: int, path: str, token: str | None, range_header: str | None = None
) -> dict[str, Any]:
    extra = f"Authorization: Bearer {token}\r\n" if token else ""
    if range_header:
        extra += f"Range: {range_header}\r\n"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
    buffer = bytearray(4 * MiB)
    view = memoryview(buffer)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        remaining = int(headers["content-length"]) - len(rest)
        while remaining > 0:
            got = sock.recv_into(view, min(len(buffer), remaining))
            if not got:
                raise ConnectionError("download cut short")
            remaining -= got
        seconds = time.perf_counter() - started
    return {
        "status": int(lines[0].split()[1]),
        "bytes": int(headers["content-length"]),
        "seconds": seconds,
        "content_range": headers.get("content-range"),
    }


# ---------------------------------------------------------------- orchestration


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    load = os.getloadavg()
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {int(mem) // 1024} MiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average at start "
        f"{load[0]:.1f}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(root: Path, size: int, fsync: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "TMPDIR": str(root / "tmp"),
        "EMBEDDED_DB_PATH": str(root / "db" / "library.sqlite3"),
        "UPLOADS_DIR": str(root / "uploads"),
        "JWT_SECRET": "bench-secret-" + "x" * 40,
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MAX_DOCUMENT_BYTES": str(size + MiB),
        "ACCESS_TOKEN_MINUTES": "600",
        "NOTIFY_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "STORAGE_BACKEND": "local",
        "BENCH_SYNC_ON_COMMIT": "1" if fsync else "0",
    }
    env.pop("MONGODB_URL", None)
    (root / "tmp").mkdir()
    command = [sys.executable, __file__, "--serve", str(port)]
    server = subprocess.Popen(command, env=env, cwd=root)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server, port
        except httpx2.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def chunked(parts: Iterator[memoryview | bytes]) -> Iterator[bytes]:
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + bytes(part) + b"\r\n"
    yield b"0\r\n\r\n"


def rate(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="upload size (default 1 GiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fsync", action="store_true", help="fsync every committed upload (SYNC_ON_COMMIT)"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    root = Path(tempfile.mkdtemp(prefix="library-bench-upload-"))
    size = args.size_mib * MiB
    free = shutil.disk_usage(root).free
    note = ""
    if free < 4 * size:
        size, note = 256 * MiB, f" (only {free // MiB} MiB free: fell back to 256 MiB)"
    print(f"machine: {machine()}")
    print(f"fsync on commit: {'yes' if args.fsync else 'no (the default)'}")
    print(f"working folder {root}, {free // MiB} MiB free; file size {size // MiB} MiB{note}")
    server, port = start_server(root, size, args.fsync)
    base = f"http://127.0.0.1:{port}"
    try:
        run(root, server, port, base, size, args.rounds)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def run(
    root: Path, server: subprocess.Popen[bytes], port: int, base: str, size: int, rounds: int
) -> None:
    tmpdir, uploads = root / "tmp", root / "uploads"
    login = httpx2.post(
        f"{base}/api/v1/auth/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    token = login.json()["access_token"]
    book = httpx2.post(
        f"{base}/api/v1/books",
        json={"title": "Bench", "authors": ["Bench"], "isbn": "9780306406157"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    book_id = book["id"]
    block, whole, tail = pdf_blocks(size)
    expected = hashlib.sha256()
    for chunk in file_chunks(block, whole, tail):
        expected.update(chunk)
    sha = expected.hexdigest()

    routes = {
        "streaming": f"/api/v1/books/{book_id}/document",
        "naive": f"/bench/naive/{book_id}",
        "ceiling": "/bench/discard",
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in routes}
    small_block, small_whole, small_tail = pdf_blocks(8 * MiB)
    for path in routes.values():  # warm-up
        parts, length = multipart_parts(small_block, small_whole, small_tail, "warm.pdf")
        upload(port, path, token, parts, length)
    for _ in range(rounds):
        for name, path in routes.items():
            for leftover in uploads.glob("naive-*"):
                leftover.unlink()
            parts, length = multipart_parts(block, whole, tail, "bench.pdf")
            with Probe(server.pid, tmpdir) as probe:
                outcome = upload(port, path, token, parts, length)
            assert outcome["status"] == 200, outcome["body"][:300]
            body = json.loads(outcome["body"])
            if name == "streaming":
                assert body["document"]["sha256"] == sha
            elif name == "naive":
                assert body["sha256"] == sha
            outcome.update(
                rss=probe.rss_growth, tmp=probe.tmp_peak, hwm=probe.hwm_after, cpu=probe.cpu
            )
            results[name].append(outcome)
            print(
                f"  {name:9} {rate(size, outcome['seconds']):8.0f} MiB/s  "
                f"server CPU {probe.cpu / (size / (1 << 30)):.2f} s/GiB  "
                f"RSS +{probe.rss_growth / MiB:.1f} MiB  TMPDIR peak {probe.tmp_peak} B"
            )
    for leftover in uploads.glob("naive-*"):
        leftover.unlink()

    print("\nuploads (median of", rounds, "rounds):")
    med = {n: statistics.median(rate(size, r["seconds"]) for r in rs) for n, rs in results.items()}
    for name, rs in results.items():
        print(
            f"  {name:9} {med[name]:8.0f} MiB/s (runs: "
            f"{', '.join(f'{rate(size, r["seconds"]):.0f}' for r in rs)}); peak RSS growth "
            f"{max(r['rss'] for r in rs) / MiB:.1f} MiB; TMPDIR peak "
            f"{max(r['tmp'] for r in rs) / MiB:.1f} MiB"
        )
    print(
        f"  streaming / naive = {med['streaming'] / med['naive']:.2f}x, "
        f"streaming / ceiling = {med['streaming'] / med['ceiling']:.2f}x"
    )
    left = sum(p.stat().st_size for p in tmpdir.rglob("*") if p.is_file())
    print(f"  bytes left under TMPDIR after the uploads: {left}")
    print(f"  UPLOADS_DIR after the uploads: {sorted(p.name for p in uploads.iterdir())}")

    rejections(port, base, token, book_id, size)
    downloads(port, token, book_id, uploads, server.pid, tmpdir, size, rounds)


def rejections(port: int, base: str, token: str, book_id: str, size: int) -> None:
    print(
        f"\nrefused {size // MiB} MiB uploads (app: body bytes the app received; "
        "client: bytes the client got into the socket before the answer):"
    )
    html, html_whole, html_tail = b"<html>" + os.urandom(MiB - 6), size // MiB, 0
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(MiB - 4)
    document = f"/api/v1/books/{book_id}/document"
    cover = f"/api/v1/books/{book_id}/cover"
    block, whole, tail = pdf_blocks(size)
    cases = [
        ("401 no token", document, None, (block, whole, tail), True),
        ("413 Content-Length over MAX_COVER_BYTES", cover, token, (block, whole, tail), True),
        ("415 not a PDF", document, token, (html, html_whole, html_tail), True),
        ("413 chunked JPEG, no Content-Length (cover)", cover, token, (jpeg, whole, 0), False),
    ]
    for label, path, auth, (blk, n, t), declared in cases:
        parts, length = multipart_parts(blk, n, t, "big.pdf")
        if declared:
            outcome = upload(port, path, auth, parts, length)
        else:
            outcome = upload_chunked(port, path, auth, parts)
        counts = httpx2.get(f"{base}/bench/consumed").json()
        consumed, calls = counts[f"PUT {path}"], counts[f"PUT {path} calls"]
        print(
            f"  {label:42} -> {outcome['status']}  app {consumed / 1024:.1f} KiB in {calls} "
            f"receive(s), client {outcome['sent'] / 1024:.0f} KiB, "
            f"{outcome['seconds'] * 1000:.0f} ms"
        )


def upload_chunked(
    port: int, path: str, token: str | None, parts: Iterator[memoryview | bytes]
) -> dict[str, Any]:
    request = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        started = time.perf_counter()
        sock.sendall(request)
        try:
            for piece in chunked(parts):
                if _readable(sock):
                    break
                sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        status, _, _ = read_response(sock)
    return {"status": status, "sent": sent, "seconds": time.perf_counter() - started}


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
    start = size // 4
    cases = {
        "GET document (200)": (f"/api/v1/books/{book_id}/document", token, None),
        f"GET document Range bytes={start}- (206)": (
            f"/api/v1/books/{book_id}/document",
            token,
            f"bytes={start}-",
        ),
        "default FileResponse (200)": (f"/bench/fileresponse/{key}", None, None),
    }
    print(f"\ndownloads of the {size // MiB} MiB document (median of {rounds}):")
    med: dict[str, float] = {}
    for label, (path, auth, span) in cases.items():
        speeds, growth = [], 0
        for _ in range(rounds):
            with Probe(pid, tmpdir) as probe:
                outcome = download(port, path, auth, span)
            assert outcome["status"] == (206 if span else 200)
            speeds.append(rate(outcome["bytes"], outcome["seconds"]))
            growth = max(growth, probe.rss_growth)
        med[label] = statistics.median(speeds)
        print(
            f"  {label:42} {med[label]:8.0f} MiB/s (runs: "
            f"{', '.join(f'{s:.0f}' for s in speeds)}); peak RSS growth {growth / MiB:.1f} MiB"
        )
    ours, theirs = med["GET document (200)"], med["default FileResponse (200)"]
    print(f"  ours / FileResponse = {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
