from datetime import datetime

from beanie import Document, PydanticObjectId
from pymongo import ASCENDING, IndexModel


class Session(Document):
    """One login: what its refresh and access tokens point at."""

    user_id: PydanticObjectId
    refresh_hash: str
    # Hashes of rotated refresh tokens: seeing one again means the token was stolen.
    previous_hashes: list[str] = []
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime
    user_agent: str | None = None
    ip: str | None = None
    revoked_at: datetime | None = None

    class Settings:
        name = "sessions"
        indexes = [
            IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING)], name="by_user"),
            IndexModel([("refresh_hash", ASCENDING)], unique=True, name="refresh_hash"),
            IndexModel([("previous_hashes", ASCENDING)], name="previous_hashes"),
            # Expired sessions are refused by the query; TTL only collects them later.
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl"),
        ]


class LoginAttempt(Document):
    """A failed login for an email string, known or not."""

    email: str
    at: datetime
    expires_at: datetime

    class Settings:
        name = "login_attempts"
        indexes = [
            IndexModel([("email", ASCENDING), ("at", ASCENDING)], name="email_at"),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl"),
        ]


DOCUMENTS = [Session, LoginAttempt]
