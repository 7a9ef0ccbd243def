from datetime import datetime
from typing import Literal, TypedDict

from beanie import Document
from pymongo import ASCENDING, IndexModel


class IdempotentRequest(Document):
    """The first answer to a POST sent with an Idempotency-Key, kept for its retries.

    Its id is a hash of the user and the key: the key's uniqueness is the `_id`'s own, with no
    further unique index to check on every write.
    """

    id: str  # type: ignore[assignment]
    state: Literal["running", "done"]
    started_at: datetime
    expires_at: datetime
    fingerprint: str | None = None
    status: int | None = None
    headers: list[list[str]] = []
    body: bytes = b""

    class Settings:
        name = "idempotency_keys"
        indexes = [
            # Lapsed keys are treated as absent by the service; TTL only collects them later.
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl"),
        ]


# A record as the service reads it back: `state` tells which of the two it is.


class RunningClaim(TypedDict):
    """A claim whose request is still running: no answer kept yet."""

    _id: str
    state: Literal["running"]
    started_at: datetime
    expires_at: datetime


class StoredAnswer(TypedDict):
    """A finished record: the first answer, kept for its retries."""

    _id: str
    state: Literal["done"]
    started_at: datetime
    expires_at: datetime
    fingerprint: str | None
    status: int
    headers: list[list[str]]
    body: bytes


DOCUMENTS = [IdempotentRequest]
