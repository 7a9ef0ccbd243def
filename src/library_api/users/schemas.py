from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from .models import Role, User


def _lower(value: str) -> str:
    return value.lower()


Email = Annotated[EmailStr, AfterValidator(_lower)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# Length only: whether a password is too common is a rule of the service (422 weak_password).
Password = Annotated[str, Field(min_length=8, max_length=128)]


class UserPublic(BaseModel):
    id: str
    name: str
    email: str
    role: Role
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> "UserPublic":
        return cls(
            id=str(user.id),
            name=user.name,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
        )


class UserMe(UserPublic):
    active_loans: int
    overdue_loans: int


class UserRegister(BaseModel):
    # Unknown fields such as `role` are dropped: self-registration always makes a member.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: Name
    email: Email
    password: Password


class UserCreate(UserRegister):
    role: Role = Role.member


class UserSelfUpdate(BaseModel):
    name: Name


class UserAdminUpdate(BaseModel):
    name: Name | None = None
    role: Role | None = None
    is_active: bool | None = None


class PasswordChange(BaseModel):
    current_password: Annotated[str, Field(max_length=128)]
    new_password: Password
