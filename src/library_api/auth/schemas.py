from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI2NjUwZjBhMWM0"
                    "YjVkNmU3ZjgwOTFhMmIiLCJzaWQiOiI2NjUwZjljM2Q0ZTVmNmE3YjhjOWQwZTEiLCJleHAiOjE3"
                    "OTU0Mzg4MDB9.3q8Yx0dJ1m2s0f5pQ9VtXh7kR4nA6bC8eD1gH2iJ3kM",
                    "refresh_token": "pX8vN3qL7mT2kR9sW4yB6cD1fG5hJ0aE8uI3oZ7xC2v",
                    "token_type": "bearer",
                    "expires_in": 900,
                }
            ]
        }
    )

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Lifetime of the access token in seconds")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"refresh_token": "pX8vN3qL7mT2kR9sW4yB6cD1fG5hJ0aE8uI3oZ7xC2v"}]
        }
    )

    refresh_token: str = Field(max_length=512)


class SessionPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6650f9c3d4e5f6a7b8c9d0e1",
                    "created_at": "2026-11-23T10:00:00Z",
                    "last_used_at": "2026-11-23T10:14:00Z",
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/142.0 Safari/537.36",
                    "ip": "203.0.113.24",
                    "current": True,
                }
            ]
        }
    )

    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool
