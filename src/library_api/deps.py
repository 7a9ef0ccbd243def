"""What route handlers depend on: the runtime, the caller and the caller's role."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from .auth import service as auth_service
from .config import Settings
from .db import Database
from .errors import AppError, unauthorized
from .files.storage import Storage
from .security import InvalidTokenError, PasswordHasher, TokenSigner
from .users.models import Role, User


@dataclass(slots=True)
class Runtime:
    """Everything built once at start-up and shared by every request."""

    settings: Settings
    database: Database
    hasher: PasswordHasher
    signer: TokenSigner
    storage: Storage


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def _authenticated(
    runtime: RuntimeDep, token: Annotated[str | None, Depends(_bearer)]
) -> auth_service.Authenticated:
    if not token:
        raise unauthorized()
    try:
        claims = runtime.signer.verify(token)
    except InvalidTokenError:
        raise unauthorized("Invalid or expired token", "invalid_token") from None
    return await auth_service.authenticate(claims=claims)


CurrentAuth = Annotated[auth_service.Authenticated, Depends(_authenticated)]


def _with_role(role: Role):  # type: ignore[no-untyped-def]
    async def check(auth: CurrentAuth) -> User:
        if not auth.user.role.at_least(role):
            raise AppError(403, "forbidden", f"This needs the {role.value} role")
        return auth.user

    return check


CurrentUser = Annotated[User, Depends(_with_role(Role.member))]
LibrarianUser = Annotated[User, Depends(_with_role(Role.librarian))]
AdminUser = Annotated[User, Depends(_with_role(Role.admin))]
