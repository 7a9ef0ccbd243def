"""Tokens and password hashes; the only module that knows about JWT and argon2."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import anyio
import anyio.to_thread
from jose import JWTError, jwt
from passlib.context import CryptContext

from . import clock
from .config import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str


class InvalidTokenError(Exception):
    pass


class TokenSigner:
    def __init__(self, secret: str, lifetime: timedelta) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def issue(self, *, user_id: str, session_id: str) -> str:
        issued = clock.now()
        claims = {
            "sub": user_id,
            "sid": session_id,
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
            "typ": "access",
        }
        return str(jwt.encode(claims, self._secret, algorithm=ALGORITHM))

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                    # Expiry is checked below against clock.now(), which tests can move.
                    "verify_exp": False,
                },
            )
        except JWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        if claims.get("typ") != "access" or not isinstance(claims.get("sid"), str):
            raise InvalidTokenError("not an access token")
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp <= clock.now().timestamp():
            raise InvalidTokenError("token expired")
        return AccessClaims(user_id=str(claims["sub"]), session_id=claims["sid"])


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # Refresh tokens carry 256 random bits: a fast hash is enough, a slow one adds nothing.
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordHasher:
    """argon2id off the event loop, with a limiter of its own so hashing cannot starve
    the shared thread pool that the rest of the service relies on."""

    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__rounds=settings.argon2_time_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )
        self._limiter = anyio.CapacityLimiter(settings.hash_concurrency)
        # Verifying against this when an email is unknown makes both failures cost the same.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._context.hash, password, limiter=self._limiter)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, bool]:
        """(matches, needs rehash with the current parameters)."""
        target = password_hash or self._dummy_hash
        ok, _ = await anyio.to_thread.run_sync(
            self._context.verify_and_update, password, target, limiter=self._limiter
        )
        if password_hash is None or not ok:
            return False, False
        return True, self._context.needs_update(password_hash)
