"""What is kept about a reader, for how long, and how a reader is erased (contract: Privacy).

Reading records are confidential: finished history older than HISTORY_RETENTION_DAYS stops
naming its reader (unless the reader set `keep_history`), and an erased account's history
does so at once. Anonymised records keep counting in /stats and top_borrowed: they name
ANONYMOUS instead of the reader, so the collections keep their shape and indexes.
"""

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from pymongo.asynchronous.cursor import AsyncCursor

from .. import clock
from ..auth import service as auth_service
from ..auth.models import LoginAttempt, Session
from ..config import Settings
from ..db import IdRow, doc_id
from ..errors import AppError
from ..fines import service as fines
from ..fines.models import Fine, FineStatus
from ..loans.models import Loan, LoanStatus, ReturnedLoan
from ..notifications.models import ArchivedNotification, Notification
from ..reservations import service as reservations
from ..reservations.models import Reservation
from ..security import PasswordHasher
from ..users.models import Role, User

logger = logging.getLogger("library_api")

# The reader of every anonymised record: an id no account can have.
ANONYMOUS = PydanticObjectId("000000000000000000000000")
# Records rewritten per command: a large library's backlog never holds the engine for long.
BATCH = 500


async def _batched(collection: Any, query: dict[str, Any], change: dict[str, Any]) -> int:
    """Applies `change` to every document `query` matches, BATCH at a time; how many."""
    done: int = 0
    while True:
        found: AsyncCursor[IdRow] = collection.find(query, {"_id": 1}).limit(BATCH)
        ids = [doc["_id"] async for doc in found]
        if not ids:
            return done
        result = await collection.update_many({"_id": {"$in": ids}, **query}, change)
        done += int(result.modified_count)
        if len(ids) < BATCH:
            return done


async def _anonymise(readers: Any, before: datetime | None) -> int:
    """Finished history of `readers` (a query on user_id), older than `before` if given."""

    def older(field: str) -> dict[str, Any]:
        return {} if before is None else {field: {"$lt": before}}

    # A loan with an open fine is kept until the fine is closed.
    kept = await fines.open_fine_loans(readers=readers)
    anonymous = {"$set": {"user_id": ANONYMOUS}}
    returned = {
        "user_id": readers,
        "status": LoanStatus.returned.value,
        "_id": {"$nin": kept},
        **older("returned_at"),
    }
    # Returned loans are in the history, or still in `loans` until the next move.
    total = await _batched(Loan.get_pymongo_collection(), returned, anonymous)
    total += await _batched(ReturnedLoan.get_pymongo_collection(), returned, anonymous)
    total += await _batched(
        Reservation.get_pymongo_collection(),
        {"user_id": readers, "open": False, **older("closed_at")},
        anonymous,
    )
    total += await _batched(
        Fine.get_pymongo_collection(),
        {"user_id": readers, "status": {"$ne": FineStatus.open.value}, **older("updated_at")},
        {"$set": {"user_id": None}},
    )
    # A notification is a message to its reader and nothing else: it goes.
    notices: dict[str, Any] = {"user_id": readers}
    if before is not None:
        notices.update(older("created_at"))
        notices["$or"] = [{"read_at": None}, older("read_at")]
    for notes in (Notification, ArchivedNotification):
        total += (await notes.get_pymongo_collection().delete_many(notices)).deleted_count
    return total


async def anonymise_history(*, settings: Settings) -> int:
    """The scan's part: history older than HISTORY_RETENTION_DAYS stops naming its reader,
    for every reader who has not set `keep_history`. Idempotent, batched; how many records."""
    if settings.history_retention_days <= 0:
        return 0
    before = clock.now() - timedelta(days=settings.history_retention_days)
    found: AsyncCursor[IdRow] = User.get_pymongo_collection().find(
        {"keep_history": True}, {"_id": 1}
    )
    keepers = [doc["_id"] async for doc in found]
    done = await _anonymise({"$nin": [*keepers, ANONYMOUS, None]}, before)
    if done:
        logger.info("privacy: anonymised %d finished records older than %s", done, before.date())
    return done


async def erase(
    *,
    user: User,
    password: str | None,
    hasher: PasswordHasher,
    settings: Settings,
) -> None:
    """Erase an account: refused while books are out, a fine is open, or it is the last
    active admin; otherwise its sessions end, open reservations are cancelled (a held copy
    passes on), its history is anonymised at once and its name and email are removed, so the
    email can register again. With `password` (the reader's own request) it is checked first.
    """
    user_id = doc_id(user)
    if password is not None:
        await auth_service.begin_attempt(email=user.email, settings=settings)
        ok, _ = await hasher.verify(password, user.password_hash)
        if not ok:
            raise AppError(400, "invalid_password", "The password is wrong")
        await auth_service.clear_failures(email=user.email)
    # Deactivated first: from the next request on, nothing new can start for this account.
    users = User.get_pymongo_collection()
    await users.update_one({"_id": user_id}, {"$set": {"is_active": False}})
    try:
        await _check_erasable(user)
    except AppError:
        await users.update_one({"_id": user_id}, {"$set": {"is_active": user.is_active}})
        raise
    await auth_service.revoke_all(user_id=user_id)
    await reservations.cancel_open_for_user(user_id=user_id, settings=settings)
    records = await _anonymise({"$eq": user_id}, None)
    await Session.get_pymongo_collection().delete_many({"user_id": user_id})
    await LoginAttempt.get_pymongo_collection().delete_many({"email": user.email})
    await users.delete_one({"_id": user_id})
    # Once more after the account is gone: the scan's archive move may have copied a
    # notification between the first delete and now (notifications/archive.py).
    await ArchivedNotification.get_pymongo_collection().delete_many({"user_id": user_id})
    logger.info("privacy: erased account %s (%d records anonymised)", user_id, records)


async def _check_erasable(user: User) -> None:
    user_id = doc_id(user)
    active = await Loan.get_pymongo_collection().find_one(
        {"user_id": user_id, "status": LoanStatus.active.value}, {"_id": 1}
    )
    if active is not None:
        raise AppError(409, "has_active_loans", "Books are still out on this account")
    if await fines.open_fine_loans(readers={"$eq": user_id}):
        raise AppError(409, "fines_outstanding", "This account has an open fine balance")
    if user.role == Role.admin and user.is_active:
        others = await User.get_pymongo_collection().count_documents(
            {"role": Role.admin.value, "is_active": True, "_id": {"$ne": user_id}}
        )
        if others == 0:
            raise AppError(409, "last_admin", "The last active admin cannot be erased")


async def export(*, user: User) -> AsyncIterator[bytes]:
    """Everything held about the reader as one JSON document, produced piece by piece."""
    user_id = doc_id(user)
    yield b'{"user": ' + _json(_user(user)).encode()
    for name, collections, hidden in _EXPORTS:
        yield f', "{name}": ['.encode()
        seen: set[Any] = set()
        for collection in collections:
            async for doc in collection().find({"user_id": user_id}, hidden):
                # A returned loan caught by a move in both its collections counts once.
                if doc["_id"] in seen:
                    continue
                yield (b", " if seen else b"") + _json(doc).encode()
                seen.add(doc["_id"])
        yield b"]"
    yield b"}\n"


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return str(value)


def _user(user: User) -> dict[str, Any]:
    shown: dict[str, Any] = user.model_dump(exclude={"password_hash", "revision_id"})
    shown["id"] = str(user.id)
    return shown


# (name, collections, projection): never a secret or a hash.
_EXPORTS: tuple[tuple[str, tuple[Any, ...], dict[str, int]], ...] = (
    ("sessions", (Session.get_pymongo_collection,), {"refresh_hash": 0, "previous_hashes": 0}),
    (
        "loans",
        (Loan.get_pymongo_collection, ReturnedLoan.get_pymongo_collection),
        {"active_key": 0},
    ),
    ("reservations", (Reservation.get_pymongo_collection,), {"open_key": 0}),
    (
        "notifications",
        (Notification.get_pymongo_collection, ArchivedNotification.get_pymongo_collection),
        {"mail_claim": 0},
    ),
    ("fines", (Fine.get_pymongo_collection,), {}),
)
