"""Settings, read from the environment and `.env` (real environment variables win)."""

import logging
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

logger = logging.getLogger("library_api")

MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mongodb_url: str | None = None
    mongodb_db: str = "library"
    embedded_db_path: str = "./data/library.sqlite3"
    # Seconds PyMongo waits for a server before a request gets 503 database_unavailable.
    mongodb_timeout_seconds: float = Field(default=3.0, gt=0)

    jwt_secret: str | None = None
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)

    uploads_dir: Path = Path("./uploads")
    max_cover_bytes: int = Field(default=5_242_880, ge=1)
    max_document_bytes: int = Field(default=104_857_600, ge=1)
    max_import_bytes: int = Field(default=20_971_520, ge=1)
    storage_backend: Literal["local", "gridfs"] = "local"

    loan_days: int = Field(default=14, ge=1)
    max_active_loans: int = Field(default=5, ge=1)
    max_renewals: int = Field(default=2, ge=0)
    hold_pickup_days: int = Field(default=3, ge=1)

    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)

    notify_interval_seconds: int = Field(default=3600, ge=0)
    consistency_interval_seconds: int = Field(default=300, ge=0)
    smtp_url: str | None = None
    smtp_from: str = "library@localhost"

    cors_origins: Annotated[list[str], NoDecode] = []

    admin_email: str | None = None
    admin_password: str | None = None

    # Argon2id cost: OWASP's minimum recommendation by default.
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Hashes computed at once; the rest queue so a login storm cannot starve the thread pool.
    hash_concurrency: int = Field(default=2, ge=1)

    # Hostile-input limits (contract: Conventions). A head over MAX_HEADER_BYTES or slower than
    # HEADER_TIMEOUT_SECONDS is refused by the HTTP server; a non-upload body over
    # MAX_BODY_BYTES is refused by the app before any of it is parsed.
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # What the HTTP server reads at a time: also the most of an oversized head it reads before
    # refusing it. Uploads stream faster with larger reads (bench/README.md).
    read_buffer_bytes: int = Field(default=65_536, ge=16_384, le=16_777_216)
    # On SIGTERM: requests in flight may finish for this long, then they are cancelled.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
    # How long an Idempotency-Key's first answer is kept for replay.
    idempotency_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Live notifications (GET /notifications/stream): the database poll's pace, the longest
    # silence before a comment line, how often the session and user are checked again, and
    # how many streams one instance keeps open for one user and in all.
    notify_stream_poll_seconds: float = Field(default=2.0, gt=0, le=4)
    notify_stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15)
    notify_stream_recheck_seconds: float = Field(default=10.0, gt=0, le=25)
    notify_streams_per_user: int = Field(default=3, ge=1, le=100)
    notify_streams_total: int = Field(default=100, ge=1, le=100_000)
    # False: always poll, even where the deployment could use change streams.
    notify_stream_change_streams: bool = True

    # Fines (contract: Fines): off while FINE_PER_DAY_CENTS is 0; integer minor units.
    fine_per_day_cents: int = Field(default=0, ge=0, le=10**6)
    fine_max_cents: int = Field(default=2000, ge=0, le=10**8)
    fine_block_cents: int = Field(default=500, ge=0, le=10**8)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    # Privacy (contract: Privacy): finished history older than this is anonymised; 0 keeps it.
    history_retention_days: int = Field(default=365, ge=0, le=36_500)

    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, data: object) -> object:
        if isinstance(data, dict):
            raw = data.get("cors_origins", data.get("CORS_ORIGINS"))
            if isinstance(raw, str):
                key = "cors_origins" if "cors_origins" in data else "CORS_ORIGINS"
                data[key] = [o.strip() for o in raw.split(",") if o.strip()]
        return data

    @model_validator(mode="after")
    def _check_secret(self) -> Self:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return self

    @property
    def embedded(self) -> bool:
        return not self.mongodb_url


class ConfigError(RuntimeError):
    """A setting makes start-up impossible; the message says which and why."""


# Any access for the group or other accounts: the key signs every token, the directory holds
# the database files with every password and refresh-token hash.
_OPEN_TO_OTHERS = 0o077
_warned_shared: set[Path] = set()


def private_directory(directory: Path) -> None:
    """Create `directory` owner-only (0700), or tighten it if other accounts may enter it.

    A directory the service cannot own alone (sticky like /tmp, another account's, the working
    directory or one above it, the home directory) keeps its mode: changing it would lock
    others out of their own files. The files the service puts there are owner-only anyway.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _OPEN_TO_OTHERS:
        return
    if _shared(directory, info):
        if directory not in _warned_shared:
            _warned_shared.add(directory)
            logger.warning(
                "data directory %s is open to other accounts (mode %03o) but shared, so left "
                "as it is; give EMBEDDED_DB_PATH a directory of its own",
                directory,
                mode,
            )
        return
    directory.chmod(0o700)
    logger.warning(
        "data directory %s was open to other accounts (mode %03o): set to 700", directory, mode
    )


def _shared(directory: Path, info: os.stat_result) -> bool:
    if info.st_mode & stat.S_ISVTX or info.st_uid != os.geteuid():
        return True
    resolved = directory.resolve()
    cwd = Path.cwd().resolve()
    home = Path(os.path.expanduser("~")).resolve()  # noqa: PTH111 - never raises, unlike home()
    return resolved in {cwd, home, *cwd.parents}


def resolve_jwt_secret(settings: Settings) -> str:
    """The signing key: configured, or on the embedded database generated once and kept.

    Raises ConfigError (one line) when the key is shorter than MIN_SECRET_BYTES, or when its
    file is open to other accounts.
    """
    if settings.jwt_secret:
        if len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return settings.jwt_secret
    if not settings.embedded:
        raise ConfigError("JWT_SECRET must be set (at least 32 bytes) when MONGODB_URL is set")
    if settings.embedded_db_path == ":memory:":
        logger.warning("JWT_SECRET is not set: using a throw-away key for this in-memory run")
        return secrets.token_urlsafe(48)
    key_file = Path(settings.embedded_db_path).with_name("jwt-secret")
    try:
        private_directory(key_file.parent)
        secret = _read_key(key_file)
        if secret is None:
            secret = _create_key(key_file)
    except OSError as exc:
        raise ConfigError(f"cannot keep the signing key in {key_file}: {exc}") from None
    return secret


def _read_key(key_file: Path) -> str | None:
    """The key kept in `key_file`, None if there is no such file."""
    try:
        descriptor = os.open(key_file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(descriptor, "rb") as source:
        # The mode of the file actually opened, not of whatever the name pointed to before.
        mode = stat.S_IMODE(os.fstat(source.fileno()).st_mode)
        if mode & _OPEN_TO_OTHERS:
            raise ConfigError(
                f"the signing key {key_file} is open to other accounts (mode {mode:03o}): "
                f"run chmod 600 {key_file}, and replace the key if others may have read it"
            )
        raw = source.read()
    try:
        secret = raw.decode().strip()
    except UnicodeDecodeError:
        secret = ""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        # An empty key is what a start-up cut short between creating and writing it left.
        raise ConfigError(
            f"the signing key in {key_file} is empty or shorter than {MIN_SECRET_BYTES} bytes: "
            "delete the file to have a new key generated (everyone must log in again), "
            "or set JWT_SECRET"
        )
    return secret


def _create_key(key_file: Path) -> str:
    """Generate the key and keep it in `key_file`, or return the one another process kept.

    The key is written and flushed to disk under a temporary name first, then hard-linked to
    `key_file`: the name never shows a half-written key, and, unlike a rename, a link never
    replaces a key another process starting at the same moment has just put there.
    """
    secret = secrets.token_urlsafe(48)
    temporary = key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            os.fchmod(out.fileno(), 0o600)  # whatever the umask
            out.write(secret)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            kept = _read_key(key_file)
            if kept is None:
                raise ConfigError(f"the signing key {key_file} vanished while starting") from None
            return kept
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(key_file.parent)
    logger.warning("JWT_SECRET is not set: generated a signing key in %s", key_file)
    return secret


def _sync_directory(directory: Path) -> None:
    """Flush a directory's entries, so the key's name survives a power cut too."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@lru_cache
def get_settings() -> Settings:
    return Settings()
