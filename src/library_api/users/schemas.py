from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
)

from .models import Role, User


def _lower(value: str) -> str:
    return value.lower()


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


Email = Annotated[EmailStr, BeforeValidator(_strip), AfterValidator(_lower)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# Length only: whether a password is too common is a rule of the service (422 weak_password).
Password = Annotated[str, Field(min_length=8, max_length=128)]


_USER_EXAMPLE: dict[str, JsonValue] = {
    "id": "6650f0a1c4b5d6e7f8091a2b",
    "name": "Ada Lovelace",
    "email": "ada.lovelace@example.com",
    "role": "member",
    "is_active": True,
    "keep_history": False,
    "created_at": "2026-11-02T09:30:00Z",
}


class UserPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_USER_EXAMPLE]})

    id: str
    name: str
    email: str
    role: Role
    is_active: bool
    keep_history: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> "UserPublic":
        return cls(
            id=str(user.id),
            name=user.name,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            keep_history=user.keep_history,
            created_at=user.created_at,
        )


class UserMe(UserPublic):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_USER_EXAMPLE, "active_loans": 2, "overdue_loans": 0, "fines_due_cents": 0}
            ]
        }
    )

    active_loans: int
    overdue_loans: int
    # The sum of the caller's open fine balances (contract: Fines).
    fines_due_cents: int


class UserRegister(BaseModel):
    # Unknown fields such as `role` are dropped: self-registration always makes a member.
    # Passwords are taken exactly as typed; only the name and the email are trimmed.
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ada Lovelace",
                    "email": "ada.lovelace@example.com",
                    "password": "analytical engine 1843",
                }
            ]
        },
    )

    name: Name
    email: Email
    password: Password


class UserCreate(UserRegister):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "name": "Grace Hopper",
                    "email": "grace.hopper@example.com",
                    "password": "compiler on the mark I",
                    "role": "librarian",
                }
            ]
        },
    )

    role: Role = Role.member


class UserSelfUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Augusta Ada King", "keep_history": False}]}
    )

    name: Name | None = None
    # Keep my loan history past HISTORY_RETENTION_DAYS.
    keep_history: bool | None = None


class AccountErasure(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"password": "analytical engine 1843"}]}
    )

    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserAdminUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "librarian", "is_active": True}]}
    )

    name: Name | None = None
    role: Role | None = None
    is_active: bool | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "analytical engine 1843",
                    "new_password": "difference engine no 2",
                }
            ]
        }
    )

    current_password: Annotated[str, Field(max_length=128)]
    new_password: Password


def admin_account(*, name: str, email: str, password: str) -> UserCreate:
    """An admin's details from the environment or the command line, checked like the API
    checks them; a ValueError says in one line what is wrong."""
    try:
        return UserCreate(name=name, email=email, password=password, role=Role.admin)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None
