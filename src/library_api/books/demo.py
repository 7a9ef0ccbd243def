"""`library-api seed-demo`: a small catalogue of public-domain classics and two accounts.

The catalogue is demo_books.csv, in the format of POST /books/import (it doubles as an
example file), loaded through the same import. Running it again adds nothing: books are
skipped by ISBN and existing accounts are left as they are, unless `reset_passwords` gives
them new passwords (printed) and ends their sessions.
"""

import asyncio
import io
import secrets
from importlib import resources

from ..errors import AppError
from ..security import PasswordHasher
from ..users import service as users_service
from ..users.models import Role
from . import imports

ACCOUNTS = (
    (Role.librarian, "Demo Librarian", "demo.librarian@example.com"),
    (Role.member, "Demo Member", "demo.member@example.com"),
)


class _InMemoryUpload:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    async def seek(self, offset: int) -> None:
        self._file.seek(offset)


def _catalogue() -> bytes:
    return resources.files(__package__).joinpath("demo_books.csv").read_bytes()


async def _account(
    role: Role, name: str, email: str, hasher: PasswordHasher, *, reset_password: bool
) -> str:
    password = secrets.token_urlsafe(12)
    try:
        await users_service.create_user(
            name=name, email=email, password=password, role=role, hasher=hasher
        )
    except AppError as exc:
        if exc.code != "email_taken":
            raise
        if not reset_password or not await users_service.reset_password(
            email=email, password=password, hasher=hasher
        ):
            return f"  {role.value:<10} {email:<28} (already there; password unchanged)"
        return f"  {role.value:<10} {email:<28} new password: {password}"
    return f"  {role.value:<10} {email:<28} password: {password}"


async def seed(*, hasher: PasswordHasher, reset_passwords: bool = False) -> str:
    """Load the demo catalogue and accounts; the text says what was done and how to log in."""
    data = await asyncio.to_thread(_catalogue)
    report = await imports.import_books(upload=_InMemoryUpload(data))
    if report.errors:
        raise RuntimeError(f"demo_books.csv has bad rows: {report.errors}")
    lines = [
        f"Demo catalogue: {report.created} books added, {report.skipped} already there.",
        "Accounts (log in with POST /api/v1/auth/login, or Authorize in /docs):",
    ]
    for role, name, email in ACCOUNTS:
        lines.append(await _account(role, name, email, hasher, reset_password=reset_passwords))
    return "\n".join(lines)
