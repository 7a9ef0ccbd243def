"""The lease that lets one API instance at a time run a periodic job (the scan)."""

from datetime import timedelta

from pymongo.errors import DuplicateKeyError

from .. import clock
from .models import Lease


async def take_lease(*, name: str, holder: str, ttl: timedelta) -> bool:
    """Hold `name` for `ttl` if it is free, expired or already ours; one atomic upsert."""
    now = clock.now()
    try:
        await Lease.get_pymongo_collection().update_one(
            {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
            {"$set": {"holder": holder, "expires_at": now + ttl}},
            upsert=True,
        )
    except DuplicateKeyError:
        # Someone else holds it: the filter missed, and the upsert hit the existing _id.
        return False
    return True


async def release_lease(*, name: str, holder: str) -> None:
    await Lease.get_pymongo_collection().delete_one({"_id": name, "holder": holder})
