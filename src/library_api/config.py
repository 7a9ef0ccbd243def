"""Settings, read from the environment and `.env` (real environment variables win)."""

import logging
import os
import secrets
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


def resolve_jwt_secret(settings: Settings) -> str:
    """The signing key: configured, or on the embedded database generated once and kept."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if not settings.embedded:
        raise ConfigError("JWT_SECRET must be set (at least 32 bytes) when MONGODB_URL is set")
    if settings.embedded_db_path == ":memory:":
        logger.warning("JWT_SECRET is not set: using a throw-away key for this in-memory run")
        return secrets.token_urlsafe(48)
    key_file = Path(settings.embedded_db_path).with_name("jwt-secret")
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Created owner-only from the first byte, never briefly readable by others.
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secret)
    logger.warning("JWT_SECRET is not set: generated a signing key in %s", key_file)
    return secret


@lru_cache
def get_settings() -> Settings:
    return Settings()
