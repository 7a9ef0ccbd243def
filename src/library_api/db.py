"""The database connection: a real MongoDB, or the embedded mongoeco wire server."""

import asyncio
import importlib
import logging
import threading
from pathlib import Path
from typing import Any

from beanie import Document, PydanticObjectId, init_beanie
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .config import Settings
from .errors import not_found

logger = logging.getLogger("library_api")

# Every domain lists its Beanie documents in `models.DOCUMENTS`.
DOMAINS = (
    "auth",
    "users",
    "books",
    "files",
    "loans",
    "reservations",
    "notifications",
    "idempotency",
)


def document_models() -> list[type[Document]]:
    models: list[type[Document]] = []
    for domain in DOMAINS:
        module = importlib.import_module(f"library_api.{domain}.models")
        models.extend(getattr(module, "DOCUMENTS", []))
    return models


class DatabaseUnreachableError(RuntimeError):
    """Start-up could not reach MongoDB."""


class EmbeddedServer:
    """mongoeco's wire server on its own thread and event loop.

    Its engine does real work on every command; on a thread of its own that work never
    stalls the API's event loop, and the driver talks to it over TCP like any MongoDB.
    """

    def __init__(self, path: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.path = path
        self.host = host
        self.port = port
        self.uri = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="embedded-mongodb", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._error is not None:
            raise DatabaseUnreachableError(f"embedded database failed to start: {self._error}")
        return self.uri

    def _run(self, ready: threading.Event) -> None:
        try:
            from mongoeco.engines.sqlite import SQLiteEngine
            from mongoeco.wire import AsyncMongoEcoProxyServer
        except ImportError:
            self._error = RuntimeError(
                "mongoeco is not installed: pip install 'library-api[embedded]', or set MONGODB_URL"
            )
            ready.set()
            return

        async def serve() -> None:
            self._stop = asyncio.Event()
            server = AsyncMongoEcoProxyServer(
                engine=SQLiteEngine(self.path), host=self.host, port=self.port
            )
            try:
                address = await server.start()
                self.uri = address.uri
            except BaseException as exc:
                self._error = exc
                ready.set()
                return
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await server.close()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(serve())
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedServer | None = None
        self.client: AsyncMongoClient[dict[str, Any]] | None = None

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        assert self.client is not None
        return self.client[self.settings.mongodb_db]

    async def connect(self) -> None:
        url = self.settings.mongodb_url
        if not url:
            self.embedded = EmbeddedServer(self.settings.embedded_db_path)
            url = await asyncio.to_thread(self.embedded.start)
            logger.info("embedded database on %s (%s)", url, self.settings.embedded_db_path)
        timeout_ms = int(self.settings.mongodb_timeout_seconds * 1000)
        self.client = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
        )
        if not await self.ping():
            await self.close()
            raise DatabaseUnreachableError(
                f"cannot reach MongoDB at {redact(url)} within "
                f"{self.settings.mongodb_timeout_seconds:g} s"
            )
        await self.bind()

    async def bind(self, *, indexes: bool = True) -> None:
        """Point Beanie's documents at this database (Beanie's binding is process-wide)."""
        await init_beanie(
            database=self.db, document_models=document_models(), skip_indexes=not indexes
        )

    async def ping(self) -> bool:
        if self.client is None:
            return False
        try:
            await self.client.admin.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None


def redact(url: str) -> str:
    """A connection string without its password, fit for a log line."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def object_id(value: str, what: str) -> PydanticObjectId:
    """Parse a path id; a malformed one is as unknown as a missing one (404)."""
    if not ObjectId.is_valid(value) or len(value) != 24:
        raise not_found(what)
    return PydanticObjectId(value)


def doc_id(document: Document) -> PydanticObjectId:
    """The id of a stored document (always set once inserted or loaded)."""
    assert document.id is not None
    return document.id
