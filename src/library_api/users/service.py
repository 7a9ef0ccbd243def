"""Accounts: creation, profiles and administration."""

import re
import unicodedata
from typing import Any

from beanie import PydanticObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .. import clock
from ..auth import passwords
from ..auth import service as auth_service
from ..config import Settings
from ..db import doc_id
from ..errors import AppError, not_found
from ..loans.models import Loan, LoanStatus
from ..reservations import service as reservations_service
from ..security import PasswordHasher
from .models import Role, User


def check_strength(*, password: str, email: str) -> None:
    """Refuse a password that is easy to guess for this account, or that some client or log
    would mangle: `422 weak_password`."""

    def weak(detail: str) -> AppError:
        return AppError(422, "weak_password", detail)

    if any(unicodedata.category(c) == "Cc" for c in password):
        raise weak("The password must not contain control characters")
    if not password.strip():
        raise weak("The password must not be only whitespace")
    typed = password.strip().casefold()
    local = email.rpartition("@")[0]
    if typed in (email.casefold(), local.casefold()):
        raise weak("The password must not be your email address")
    if passwords.is_common(password):
        raise weak("This password is too common; choose another")


async def create_user(
    *, name: str, email: str, password: str, role: Role, hasher: PasswordHasher
) -> User:
    check_strength(password=password, email=email)
    user = User.new(name=name, email=email, password_hash=await hasher.hash(password), role=role)
    try:
        await user.insert()
    except DuplicateKeyError:
        raise AppError(409, "email_taken", "An account with this email already exists") from None
    return user


async def ensure_admin(*, email: str, password: str, hasher: PasswordHasher) -> User | None:
    """Create the first admin, only while the service has none."""
    if await User.find_one({"role": Role.admin}) is not None:
        return None
    return await create_user(
        name="Administrator",
        email=email.strip().lower(),
        password=password,
        role=Role.admin,
        hasher=hasher,
    )


async def get_user(*, user_id: PydanticObjectId) -> User:
    user = await User.get(user_id)
    if user is None:
        raise not_found("User")
    return user


async def loan_counts(*, user_id: PydanticObjectId) -> tuple[int, int]:
    """(active loans, overdue loans) of a user."""
    active = {"user_id": user_id, "status": LoanStatus.active}
    total = await Loan.find(active).count()
    overdue = await Loan.find({**active, "due_at": {"$lt": clock.now()}}).count() if total else 0
    return total, overdue


async def list_users(
    *, q: str | None, role: Role | None, skip: int, limit: int
) -> tuple[list[User], int]:
    query: dict[str, Any] = {}
    if q:
        pattern = {"$regex": re.escape(q.strip()), "$options": "i"}
        query["$or"] = [{"name": pattern}, {"email": pattern}]
    if role is not None:
        query["role"] = role
    found = User.find(query)
    total = await found.count()
    users = await User.find(query).sort("created_at", "_id").skip(skip).limit(limit).to_list()
    return users, total


async def _update(user_id: PydanticObjectId, changes: dict[str, Any]) -> User:
    raw = await User.get_pymongo_collection().find_one_and_update(
        {"_id": user_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
    )
    if raw is None:
        raise not_found("User")
    user: User = User.model_validate(raw)
    return user


async def update_own(*, user: User, name: str | None, keep_history: bool | None) -> User:
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if keep_history is not None:
        changes["keep_history"] = keep_history
    return await _update(doc_id(user), changes) if changes else user


async def change_password(
    *,
    user: User,
    session_id: PydanticObjectId,
    current_password: str,
    new_password: str,
    hasher: PasswordHasher,
    settings: Settings,
) -> None:
    # Guesses at the current password count like failed logins, so a stolen access token
    # cannot be used to find the password.
    await auth_service.begin_attempt(email=user.email, settings=settings)
    ok, _ = await hasher.verify(current_password, user.password_hash)
    if not ok:
        raise AppError(400, "invalid_password", "The current password is wrong")
    await auth_service.clear_failures(email=user.email)
    check_strength(password=new_password, email=user.email)
    await _update(doc_id(user), {"password_hash": await hasher.hash(new_password)})
    await auth_service.revoke_all(user_id=doc_id(user), keep=session_id)


async def administer(
    *,
    user_id: PydanticObjectId,
    name: str | None,
    role: Role | None,
    is_active: bool | None,
    settings: Settings,
) -> User:
    """Apply an admin's changes; deactivating ends the user's sessions and reservations."""
    target = await get_user(user_id=user_id)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if role is not None:
        changes["role"] = role
    if is_active is not None:
        changes["is_active"] = is_active
    removes_admin = (
        target.role == Role.admin
        and target.is_active
        and (changes.get("role", Role.admin) != Role.admin or not changes.get("is_active", True))
    )
    if not changes:
        return target
    updated = await _update(user_id, changes)
    # Counted after the write: two admins stepping down at once both see the other gone,
    # and both are put back, rather than each seeing the other still there.
    if removes_admin and await User.find({"role": Role.admin, "is_active": True}).count() == 0:
        await _update(user_id, {field: getattr(target, field) for field in changes})
        raise AppError(409, "last_admin", "The last active admin cannot be demoted or deactivated")
    if target.is_active and not updated.is_active:
        await auth_service.revoke_all(user_id=user_id)
        # A held copy must not wait days for a reader who can no longer log in.
        await reservations_service.cancel_open_for_user(user_id=user_id, settings=settings)
    return updated


async def reset_password(*, email: str, password: str, hasher: PasswordHasher) -> bool:
    """Give the account a new password and end its sessions; False when there is none."""
    user = await User.find_one({"email": email})
    if user is None:
        return False
    await _update(doc_id(user), {"password_hash": await hasher.hash(password)})
    await auth_service.revoke_all(user_id=doc_id(user))
    return True
