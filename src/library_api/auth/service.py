"""Logins, sessions and tokens."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict, cast

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from .. import clock
from ..config import Settings
from ..db import doc_id
from ..errors import AppError, not_found, unauthorized
from ..security import (
    AccessClaims,
    PasswordHasher,
    TokenSigner,
    hash_refresh_token,
    new_refresh_token,
)
from ..users.models import User
from .models import LoginAttempt, Session
from .schemas import MAX_LOGIN_PASSWORD, TokenPair, login_email


class _Tries(TypedDict):
    """An email's recent tries counted (`$group` by email), with its account when asked for
    (`$lookup` as "user": the user documents of that email, at most one)."""

    _id: str
    tries: int
    user: NotRequired[list[dict[str, Any]]]


class _SessionRow(TypedDict):
    """A whole session (validated as a `Session`) with its user joined (`$lookup` as "user")."""

    _id: ObjectId
    user: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    session_id: PydanticObjectId

    @property
    def session_user_id(self) -> PydanticObjectId:
        return doc_id(self.user)


def _invalid_credentials() -> AppError:
    return unauthorized("Incorrect email or password", "invalid_credentials")


async def begin_attempt(*, email: str, settings: Settings) -> None:
    """Count a password try before the password is checked.

    Recording first means parallel guesses cannot all pass a count taken before any of them
    failed: each count sees every try recorded so far, and a try is checked only while those
    are within the limit.
    """
    await _attempt(email=email, settings=settings, account=False)


async def _attempt(*, email: str, settings: Settings, account: bool) -> User | None:
    """`begin_attempt`; with `account`, the account of that email is read by the same command."""
    now = clock.now()
    window = timedelta(seconds=settings.login_lockout_seconds)
    attempt = LoginAttempt(email=email, at=now, expires_at=now + window)
    await attempt.insert()
    recent: dict[str, Any] = {"email": email, "at": {"$gt": now - window}}
    tries, user = await _count_tries(recent, account=account)
    if tries <= settings.login_max_failures:
        return user
    # A refused try is not a failure: it must not push the end of the lock-out further away,
    # so it is taken back - unless fewer than the limit's worth came before it in (at, _id)
    # order. In a burst every try may see all the others and be refused; were each taken
    # back, nothing would be left to lock the email. The first ones always stay.
    earlier = {**recent, "$or": [{"at": {"$lt": now}}, {"at": now, "_id": {"$lt": attempt.id}}]}
    if await LoginAttempt.find(earlier).count() >= settings.login_max_failures:
        await attempt.delete()
    raise AppError(
        429,
        "too_many_attempts",
        "Too many failed attempts for this email; try again later",
        {"Retry-After": str(await _retry_after(email=email, now=now, settings=settings))},
    )


async def _count_tries(recent: dict[str, Any], *, account: bool) -> tuple[int, User | None]:
    """How many tries `recent` matches (this one included, so at least one) and, with
    `account`, the user of that email: one aggregation."""
    pipeline: list[dict[str, Any]] = [
        {"$match": recent},
        {"$group": {"_id": "$email", "tries": {"$sum": 1}}},
    ]
    if account:
        pipeline.append(
            {
                "$lookup": {
                    "from": User.get_collection_name(),
                    "localField": "_id",
                    "foreignField": "email",
                    "as": "user",
                }
            }
        )
    cursor = await LoginAttempt.get_pymongo_collection().aggregate(pipeline)
    rows = cast(list[_Tries], await cursor.to_list(1))
    if not rows:
        return 0, None
    users = rows[0].get("user") or []
    return int(rows[0]["tries"]), User.model_validate(users[0]) if users else None


async def _retry_after(*, email: str, now: datetime, settings: Settings) -> int:
    """Seconds until the lock-out ends: until the newest LOGIN_MAX_FAILURES-th try recorded
    leaves the window, when fewer than the limit remain (after a burst more may be recorded,
    so the oldest would end it too soon). None such (a right password has just cleared them)
    means the next try is counted afresh.
    """
    window = timedelta(seconds=settings.login_lockout_seconds)
    limiting = (
        await LoginAttempt.find({"email": email, "at": {"$gt": now - window}})
        .sort("-at", "-_id")
        .skip(settings.login_max_failures - 1)
        .first_or_none()
    )
    if limiting is None:
        return 1
    return max(1, math.ceil((limiting.at + window - now).total_seconds()))


async def clear_failures(*, email: str) -> None:
    """A right password clears the email's failures (its own try included)."""
    await LoginAttempt.find({"email": email}).delete()


async def _open_session(
    *, user: User, user_agent: str | None, ip: str | None, settings: Settings, signer: TokenSigner
) -> TokenPair:
    now = clock.now()
    refresh = new_refresh_token()
    session = Session(
        user_id=doc_id(user),
        refresh_hash=hash_refresh_token(refresh),
        created_at=now,
        expires_at=now + timedelta(days=settings.refresh_token_days),
        last_used_at=now,
        user_agent=user_agent[:256] if user_agent else None,
        ip=ip,
    )
    await session.insert()
    return _pair(user_id=doc_id(user), session_id=doc_id(session), refresh=refresh, signer=signer)


def _pair(
    *, user_id: PydanticObjectId, session_id: PydanticObjectId, refresh: str, signer: TokenSigner
) -> TokenPair:
    access = signer.issue(user_id=str(user_id), session_id=str(session_id))
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(signer.lifetime.total_seconds()),
    )


async def login(
    *,
    email: str,
    password: str,
    user_agent: str | None,
    ip: str | None,
    settings: Settings,
    hasher: PasswordHasher,
    signer: TokenSigner,
) -> TokenPair:
    # Checked before anything is stored: a login that names no possible account (or sends a
    # password no account can have) gets the wrong-password answer and leaves no trace.
    normalised = login_email(email)
    if normalised is None or len(password) > MAX_LOGIN_PASSWORD:
        raise _invalid_credentials()
    email = normalised
    user = await _attempt(email=email, settings=settings, account=True)
    ok, rehash = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not ok:
        raise _invalid_credentials()
    await clear_failures(email=email)
    if not user.is_active:
        raise AppError(403, "account_disabled", "This account has been deactivated")
    if rehash:
        await User.get_pymongo_collection().update_one(
            {"_id": user.id}, {"$set": {"password_hash": await hasher.hash(password)}}
        )
    return await _open_session(
        user=user, user_agent=user_agent, ip=ip, settings=settings, signer=signer
    )


async def refresh(*, refresh_token: str, signer: TokenSigner) -> TokenPair:
    now = clock.now()
    presented = hash_refresh_token(refresh_token)
    renewed = new_refresh_token()
    raw = await Session.get_pymongo_collection().find_one_and_update(
        {"refresh_hash": presented, "revoked_at": None, "expires_at": {"$gt": now}},
        {
            "$set": {"refresh_hash": hash_refresh_token(renewed), "last_used_at": now},
            "$push": {"previous_hashes": presented},
        },
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        # A rotated token seen again was copied: end the whole session it belongs to.
        await Session.get_pymongo_collection().update_one(
            {"previous_hashes": presented, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        raise unauthorized("Invalid or expired refresh token", "invalid_token")
    session = Session.model_validate(raw)
    user = await User.get(session.user_id)
    if user is None or not user.is_active:
        raise unauthorized("Invalid or expired refresh token", "invalid_token")
    return _pair(
        user_id=session.user_id, session_id=doc_id(session), refresh=renewed, signer=signer
    )


async def _session_with_user(session_id: PydanticObjectId) -> tuple[Session, User] | None:
    """The session and its user, in one command (an aggregation joining the user)."""
    cursor = await Session.get_pymongo_collection().aggregate(
        [
            {"$match": {"_id": session_id}},
            {"$limit": 1},
            {
                "$lookup": {
                    "from": User.get_collection_name(),
                    "localField": "user_id",
                    "foreignField": "_id",
                    "as": "user",
                }
            },
        ]
    )
    rows = cast(list[_SessionRow], await cursor.to_list(1))
    if not rows or not rows[0]["user"]:
        return None
    row = rows[0]
    return Session.model_validate(row), User.model_validate(row["user"][0])


async def authenticate(*, claims: AccessClaims) -> Authenticated:
    """The user behind an access token, if its session is live and the user active.

    Session and user are read together, on every request: a logout, a deactivation or a
    change of role takes effect on the very next one.
    """
    now = clock.now()
    rejected = unauthorized("Invalid or expired token", "invalid_token")
    if not ObjectId.is_valid(claims.session_id) or not ObjectId.is_valid(claims.user_id):
        raise rejected
    found = await _session_with_user(PydanticObjectId(claims.session_id))
    if found is None:
        raise rejected
    session, user = found
    if (
        str(session.user_id) != claims.user_id
        or session.revoked_at is not None
        or session.expires_at <= now
        or not user.is_active
    ):
        raise rejected
    if now - session.last_used_at > timedelta(minutes=1):
        # At most one write a minute per session, however busy it is.
        await Session.get_pymongo_collection().update_one(
            {"_id": session.id, "last_used_at": {"$lt": now - timedelta(minutes=1)}},
            {"$set": {"last_used_at": now}},
        )
    return Authenticated(user=user, session_id=doc_id(session))


async def logout(*, session_id: PydanticObjectId) -> None:
    await Session.get_pymongo_collection().update_one(
        {"_id": session_id, "revoked_at": None}, {"$set": {"revoked_at": clock.now()}}
    )


async def list_sessions(
    *, user_id: PydanticObjectId, skip: int, limit: int
) -> tuple[list[Session], int]:
    live = {"user_id": user_id, "revoked_at": None, "expires_at": {"$gt": clock.now()}}
    total = await Session.find(live).count()
    sessions = (
        await Session.find(live).sort("-created_at", "-_id").skip(skip).limit(limit).to_list()
    )
    return sessions, total


async def revoke_session(*, user_id: PydanticObjectId, session_id: PydanticObjectId) -> None:
    result = await Session.get_pymongo_collection().update_one(
        {"_id": session_id, "user_id": user_id, "revoked_at": None},
        {"$set": {"revoked_at": clock.now()}},
    )
    if result.matched_count == 0:
        raise not_found("Session")


async def revoke_all(*, user_id: PydanticObjectId, keep: PydanticObjectId | None = None) -> None:
    query: dict[str, object] = {"user_id": user_id, "revoked_at": None}
    if keep is not None:
        query["_id"] = {"$ne": keep}
    await Session.get_pymongo_collection().update_many(query, {"$set": {"revoked_at": clock.now()}})


async def purge_expired() -> int:
    """Delete the sessions and login attempts past `expires_at`; how many.

    Their TTL indexes do it too, by the server's own clock and pace (MongoDB's monitor about
    once a minute, the embedded engine when the collection is next touched); the scan does it
    by `clock`, so these collections stay small whichever engine runs them.
    """
    expired = {"expires_at": {"$lte": clock.now()}}
    sessions = await Session.get_pymongo_collection().delete_many(expired)
    attempts = await LoginAttempt.get_pymongo_collection().delete_many(expired)
    return sessions.deleted_count + attempts.deleted_count
