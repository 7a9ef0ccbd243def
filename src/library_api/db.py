"""The database connection: a real MongoDB, or the embedded mongoeco wire server."""

import asyncio
import functools
import importlib
import logging
import os
import secrets
import stat
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import pymongo
from beanie import Document, PydanticObjectId, init_beanie
from bson import ObjectId
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from .config import Settings, private_directory
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
    "fines",
)

# The account the embedded server admits; see EmbeddedServer.
EMBEDDED_USER = "library-api"
# The SQLite file and the companions SQLite creates beside it.
DATABASE_FILE_SUFFIXES = ("", "-wal", "-shm", "-journal")
# The bound of one operation that legitimately takes long; see long_operation(): room for a
# GridFS chunk write on the embedded database late in a large upload, which can outlast the
# default bound (bench/README.md), while a frozen database still fails the operation.
LONG_OPERATION_SECONDS = 60.0
# An operation over a whole collection at start-up: an index build, the GridFS sweep.
SCAN_SECONDS = 600.0


def _declared(name: str) -> list[Any]:
    """Every domain's `models.<name>`, where it declares one, in DOMAINS order."""
    found = []
    for domain in DOMAINS:
        module = importlib.import_module(f"library_api.{domain}.models")
        if hasattr(module, name):
            found.append(getattr(module, name))
    return found


def document_models() -> list[type[Document]]:
    return [model for models in _declared("DOCUMENTS") for model in models]


def index_names(listing: str) -> dict[str, frozenset[str]]:
    """Collection -> index names, from the domains' `models.<listing>` (MONGODB_ONLY_INDEXES:
    left out of the embedded database; RETIRED_INDEXES: replaced, dropped wherever found)."""
    names: dict[str, frozenset[str]] = {}
    for listed in _declared(listing):
        for collection, indexes in listed.items():
            names[collection] = names.get(collection, frozenset()) | frozenset(indexes)
    return names


def pair_keyed() -> dict[str, tuple[str, dict[str, Any]]]:
    """Collection -> (field, which documents have it), from the domains' `models.PAIR_KEYS`."""
    keyed: dict[str, tuple[str, dict[str, Any]]] = {}
    for listed in _declared("PAIR_KEYS"):
        keyed.update(listed)
    return keyed


async def build_indexes(*, embedded: bool) -> None:
    """Every document's declared indexes (`Settings.indexes`), but MONGODB_ONLY_INDEXES on the
    embedded engine; indexes a database created before has and should not, dropped; and the
    pair key (PAIR_KEYS) given to the documents written before it, before its index counts."""
    left_out = index_names("MONGODB_ONLY_INDEXES") if embedded else {}
    retired = index_names("RETIRED_INDEXES")
    keyed = pair_keyed()
    for model in document_models():
        collection = model.get_pymongo_collection()
        if collection.name in keyed:
            await _settle_pair_keys(collection, *keyed[collection.name])
        skipped = left_out.get(collection.name, frozenset())
        declared: list[IndexModel] = getattr(model.Settings, "indexes", [])
        wanted = [index for index in declared if index.document["name"] not in skipped]
        # Built before the retired ones go: uniqueness is kept by one or the other throughout.
        if wanted:
            await collection.create_indexes(wanted)
        unwanted = skipped | retired.get(collection.name, frozenset())
        for name in unwanted & (await collection.index_information()).keys():
            await collection.drop_index(name)
            logger.info("dropped index %s.%s, no longer used here", collection.name, name)


async def _settle_pair_keys(collection: Any, field: str, holders: dict[str, Any]) -> None:
    """The pair key on every open document that lacks it (written before it, or by an older
    instance), and off every closed one that kept it (closed by an older instance)."""
    unkeyed = {**holders, field: {"$not": {"$type": "string"}}}
    await collection.update_many(unkeyed, [{"$set": {field: PAIR_KEY_EXPRESSION}}])
    await collection.update_many(
        {"$nor": [holders], field: {"$exists": True}}, {"$unset": {field: ""}}
    )


def pair_key(user_id: ObjectId, book_id: ObjectId) -> str:
    """ "<reader id>:<book id>": kept on an active loan and an open reservation, so a plain
    unique index on one string field allows one of each per reader and book (a compound
    unique index costs the embedded engine a pass over the collection per insert)."""
    return f"{user_id}:{book_id}"


# pair_key in an update pipeline, from the document's own ids (for documents written before).
PAIR_KEY_EXPRESSION = {"$concat": [{"$toString": "$user_id"}, ":", {"$toString": "$book_id"}]}


def long_operation(seconds: float = LONG_OPERATION_SECONDS) -> AbstractContextManager[None]:
    """Lift the client's per-operation bound (MONGODB_TIMEOUT_SECONDS) for ONE operation.

    Wrap a single call (one insert, one delete, one cursor batch), never a loop: PyMongo's
    `timeout()` sets one deadline for its whole block. It can lift the client's timeoutMS
    only where no outer `pymongo.timeout()` block is open (a nested block can only shorten
    its outer deadline); the service opens none elsewhere.
    """
    return pymongo.timeout(seconds)


@functools.cache
def _process_password() -> str:
    # One per process rather than per server start: an app keeps its connection string
    # while an embedded server it talks to restarts (tests do that on a fixed port).
    return secrets.token_urlsafe(32)


def _private_database_files(db_file: Path) -> None:
    """The data directory 0700 and the database files 0600, before SQLite opens them."""
    private_directory(db_file.parent)
    # SQLite gives its -wal, -shm and -journal files the mode of the database file: created
    # owner-only here, before SQLite creates it 0644, every companion is owner-only too.
    descriptor = os.open(db_file, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)
    for suffix in DATABASE_FILE_SUFFIXES:
        companion = db_file.with_name(db_file.name + suffix)
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            companion.chmod(0o600)
            logger.warning(
                "database file %s was open to other accounts (mode %03o): set to 600",
                companion,
                mode,
            )


class DatabaseUnreachableError(RuntimeError):
    """Start-up could not reach MongoDB."""


class EmbeddedServer:
    """mongoeco's wire server on its own thread and event loop.

    Its engine does real work on every command; on a thread of its own that work never
    stalls the API's event loop, and the driver talks to it over TCP like any MongoDB.

    mongoeco's wire server listens on TCP only (AsyncMongoEcoProxyServer takes a host and a
    port and calls asyncio.start_server; it has no Unix-socket or existing-socket option),
    so any local account can connect to 127.0.0.1:port. What keeps other accounts out is its
    SCRAM authentication (`auth_users`): every command that reads or writes data needs a
    login (only the handshake, connectionStatus and the session commands, which need a
    session id never shown, do not), and the only account is EMBEDDED_USER with a random
    password that lives in this process's memory and the connection string `start()`
    returns, never on disk or in a log.
    """

    def __init__(
        self, path: str, host: str = "127.0.0.1", port: int = 0, password: str | None = None
    ) -> None:
        self.path = path
        self.host = host
        self.port = port
        self.password = password or _process_password()
        self.uri = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        """Serve, and return the connection string (it holds the password: see redact())."""
        if self.path != ":memory:":
            try:
                _private_database_files(Path(self.path))
            except OSError as exc:
                raise DatabaseUnreachableError(
                    f"embedded database failed to start: {exc}"
                ) from None
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
            from mongoeco.wire import AsyncMongoEcoProxyServer, WireAuthUser
        except ImportError:
            self._error = RuntimeError(
                "mongoeco is not installed: pip install 'library-api[embedded]', or set MONGODB_URL"
            )
            ready.set()
            return

        # SCRAM-SHA-256 only: mongoeco checks SCRAM-SHA-1 proofs against the plain password
        # (MongoDB's SHA-1 variant hashes it first), and PLAIN would send it in the clear.
        account = WireAuthUser(EMBEDDED_USER, password=self.password, mechanisms=("SCRAM-SHA-256",))

        async def serve() -> None:
            self._stop = asyncio.Event()
            server = AsyncMongoEcoProxyServer(
                engine=SQLiteEngine(self.path),
                host=self.host,
                port=self.port,
                auth_users=(account,),
            )
            try:
                address = await server.start()
                self.uri = (
                    f"mongodb://{EMBEDDED_USER}:{quote(self.password, safe='')}@"
                    f"{address.host}:{address.port}/?directConnection=true"
                    "&authSource=admin&authMechanism=SCRAM-SHA-256"
                )
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
            logger.info("embedded database on %s (%s)", redact(url), self.settings.embedded_db_path)
        timeout_ms = int(self.settings.mongodb_timeout_seconds * 1000)
        # timeoutMS (PyMongo's client-side operation timeout) bounds every operation whole:
        # server selection, connection checkout, sending and waiting for the reply. A frozen
        # or unreachable database then fails each request within MONGODB_TIMEOUT_SECONDS
        # (503 database_unavailable) instead of hanging it. The bound is per operation, not
        # per request or stream: a cursor's find and each getMore are bounded one by one, so
        # a GridFS download (one read of its chunks at a time) is never cut for being long
        # as a whole. Single operations that legitimately take longer (a 500-book import
        # batch or a 1 MiB GridFS chunk write on the embedded database, the start-up sweep)
        # lift it for themselves with long_operation(). The socket and selection time-outs
        # stay set for what runs outside any operation (connection monitoring).
        self.client = AsyncMongoClient(
            url,
            tz_aware=True,
            timeoutMS=timeout_ms,
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
        # A new index is built over the documents already there: one deadline for them all.
        with long_operation(SCAN_SECONDS):
            await init_beanie(
                database=self.db, document_models=document_models(), skip_indexes=True
            )
            if indexes:
                await build_indexes(embedded=self.embedded is not None)

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


class IdRow(TypedDict):
    """A document read for its id alone (a `{"_id": 1}` projection)."""

    _id: ObjectId


def object_id(value: str, what: str) -> PydanticObjectId:
    """Parse a path id; a malformed one is as unknown as a missing one (404)."""
    if not ObjectId.is_valid(value) or len(value) != 24:
        raise not_found(what)
    return PydanticObjectId(value)


def doc_id(document: Document) -> PydanticObjectId:
    """The id of a stored document (always set once inserted or loaded)."""
    assert document.id is not None
    return document.id
