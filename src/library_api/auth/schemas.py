from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ..users.schemas import Email

# RFC 3696's bound on an address; anything longer is refused before it is parsed or stored.
MAX_LOGIN_EMAIL = 320
# Passwords are at most 128 characters at sign-up; this only keeps megabytes from the hasher.
MAX_LOGIN_PASSWORD = 1024

_email = TypeAdapter(Email)


def login_email(username: str) -> str | None:
    """The email a login names, normalised as at registration, or None when no account can
    have it (not an email, or too long)."""
    username = username.strip()
    if len(username) > MAX_LOGIN_EMAIL:
        return None
    try:
        return _email.validate_python(username)
    except ValidationError:
        return None


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Lifetime of the access token in seconds")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=512)


class SessionPublic(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool
