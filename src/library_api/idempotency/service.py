"""Claiming an Idempotency-Key, keeping its first answer, and letting it go.

Each step is one single-document write conditional on the record's state, so parallel
retries under one key cannot both run: exactly one insert (or take-over) wins the claim.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, cast

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .. import clock
from .models import IdempotentRequest, RunningClaim, StoredAnswer

# A claim still "running" after this was left by an instance that stopped mid-request: a
# retry may take it over. Longer than any request the service lets run.
ABANDONED_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Replay:
    fingerprint: str | None
    status: int
    headers: list[tuple[str, str]]
    body: bytes


Claim = Literal["claimed", "running"] | Replay


def record_id(*, user_id: str, key: str) -> str:
    return hashlib.sha256(f"{user_id}\n{key}".encode()).hexdigest()


async def claim(*, user_id: str, key: str, hours: int) -> Claim:
    """ "claimed" (run the request), "running" (another copy is running) or the answer."""
    collection = IdempotentRequest.get_pymongo_collection()
    now = clock.now()
    fresh = {"state": "running", "started_at": now, "expires_at": now + timedelta(hours=hours)}
    record = record_id(user_id=user_id, key=key)
    for _ in range(3):
        try:
            await collection.insert_one({"_id": record, **fresh})
            return "claimed"
        except DuplicateKeyError:
            pass
        lapsed = {
            "_id": record,
            "$or": [
                {"expires_at": {"$lte": now}},
                {"state": "running", "started_at": {"$lte": now - ABANDONED_AFTER}},
            ],
        }
        taken = await collection.find_one_and_update(
            lapsed,
            {"$set": fresh, "$unset": {"fingerprint": "", "status": "", "headers": "", "body": ""}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return "claimed"
        raw = await collection.find_one({"_id": record})
        found = cast(RunningClaim | StoredAnswer | None, raw)
        if found is None:
            continue  # released in between: claim it afresh
        if found["state"] == "running":
            return "running"
        return Replay(
            fingerprint=found["fingerprint"],
            status=found["status"],
            headers=[(name, value) for name, value in found["headers"]],
            body=found["body"],
        )
    return "running"


async def keep(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    await IdempotentRequest.get_pymongo_collection().update_one(
        {"_id": record_id(user_id=user_id, key=key), "state": "running"},
        {
            "$set": {
                "state": "done",
                "fingerprint": fingerprint,
                "status": status,
                "headers": [[name, value] for name, value in headers],
                "body": body,
            }
        },
    )


async def release(*, user_id: str, key: str) -> None:
    """Forgets a claim whose answer is not kept (5xx, cancelled, or a body never read)."""
    await IdempotentRequest.get_pymongo_collection().delete_one(
        {"_id": record_id(user_id=user_id, key=key), "state": "running"}
    )


async def purge_expired() -> int:
    """Delete the kept answers and claims past `expires_at` (as `auth.service.purge_expired`
    does for sessions, beside the TTL index); how many."""
    expired = {"expires_at": {"$lte": clock.now()}}
    done = await IdempotentRequest.get_pymongo_collection().delete_many(expired)
    return done.deleted_count
