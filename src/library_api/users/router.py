from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from .. import clock
from ..db import doc_id, object_id
from ..deps import AdminUser, CurrentAuth, CurrentUser, LibrarianUser, RuntimeDep
from ..errors import AUTH, STAFF, responses
from ..pagination import Page, Pagination
from ..privacy import service as privacy
from . import service
from .models import Role
from .schemas import (
    AccountErasure,
    PasswordChange,
    UserAdminUpdate,
    UserCreate,
    UserMe,
    UserPublic,
    UserSelfUpdate,
)

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserMe, responses=responses(*AUTH), summary="Your account")
async def read_me(user: CurrentUser) -> UserMe:
    active, overdue = await service.loan_counts(user_id=doc_id(user))
    return UserMe(
        **UserPublic.of(user).model_dump(),
        active_loans=active,
        overdue_loans=overdue,
        fines_due_cents=user.fines_due_cents,
    )


@router.patch(
    "/me",
    response_model=UserPublic,
    responses=responses(*AUTH),
    summary="Change your name, or whether your loan history is kept",
)
async def update_me(body: UserSelfUpdate, user: CurrentUser) -> UserPublic:
    changed = await service.update_own(user=user, name=body.name, keep_history=body.keep_history)
    return UserPublic.of(changed)


_EXPORT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Everything held about you, as one JSON document",
        "headers": {
            "Content-Disposition": {
                "description": 'attachment; filename="library-export-<YYYY-MM-DD>.json"',
                "schema": {"type": "string"},
            }
        },
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "user": {"id": "6650f0a1c4b5d6e7f8091a2b", "name": "Ada Lovelace"},
                    "sessions": [],
                    "loans": [],
                    "reservations": [],
                    "notifications": [],
                    "fines": [],
                },
            }
        },
    }
}


@router.get(
    "/me/export",
    response_class=StreamingResponse,
    responses={**_EXPORT_RESPONSE, **responses(*AUTH)},
    summary="Download everything held about you (GDPR articles 15 and 20)",
    description="Your account, sessions, loans, reservations, notifications and fines, never a "
    "secret or a hash; streamed, so a long history costs no memory.",
)
async def export_me(user: CurrentUser) -> StreamingResponse:
    name = f"library-export-{clock.now().date().isoformat()}.json"
    return StreamingResponse(
        privacy.export(user=user),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(
        *AUTH,
        "invalid_password",
        "too_many_attempts",
        "has_active_loans",
        "fines_outstanding",
        "last_admin",
    ),
    summary="Erase your account (GDPR article 17)",
    description="Needs your password. Refused while books are out, a fine is open or you are "
    "the last active admin. Your sessions end, open reservations are cancelled, your history "
    "stops naming you and your name and email are removed: the email can register again.",
)
async def erase_me(body: AccountErasure, user: CurrentUser, runtime: RuntimeDep) -> None:
    await privacy.erase(
        user=user, password=body.password, hasher=runtime.hasher, settings=runtime.settings
    )


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(*AUTH, "invalid_password", "too_many_attempts", "weak_password"),
    summary="Change your password; your other sessions end",
)
async def change_password(body: PasswordChange, auth: CurrentAuth, runtime: RuntimeDep) -> None:
    await service.change_password(
        user=auth.user,
        session_id=auth.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
        hasher=runtime.hasher,
        settings=runtime.settings,
    )


@router.get(
    "",
    response_model=Page[UserPublic],
    responses=responses(*STAFF),
    summary="Find users (librarian)",
)
async def list_users(
    _: LibrarianUser,
    paging: Pagination,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name or email")] = None,
    role: Role | None = None,
) -> Page[UserPublic]:
    users, total = await service.list_users(
        q=q, role=role, skip=paging.skip, limit=paging.page_size
    )
    return paging.wrap([UserPublic.of(u) for u in users], total)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=responses(*STAFF, "email_taken", "weak_password"),
    summary="Create a user with any role (admin)",
)
async def create_user(body: UserCreate, _: AdminUser, runtime: RuntimeDep) -> UserPublic:
    user = await service.create_user(
        name=body.name,
        email=body.email,
        password=body.password,
        role=body.role,
        hasher=runtime.hasher,
    )
    return UserPublic.of(user)


@router.get(
    "/{user_id}",
    response_model=UserPublic,
    responses=responses(*STAFF, "not_found"),
    summary="One user (librarian)",
)
async def get_user(user_id: str, _: LibrarianUser) -> UserPublic:
    return UserPublic.of(await service.get_user(user_id=object_id(user_id, "User")))


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    responses=responses(*STAFF, "not_found", "last_admin"),
    summary="Rename, change the role of, or (de)activate a user (admin)",
)
async def administer_user(
    user_id: str, body: UserAdminUpdate, _: AdminUser, runtime: RuntimeDep
) -> UserPublic:
    user = await service.administer(
        user_id=object_id(user_id, "User"),
        name=body.name,
        role=body.role,
        is_active=body.is_active,
        settings=runtime.settings,
    )
    return UserPublic.of(user)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(*STAFF, "not_found", "has_active_loans", "fines_outstanding", "last_admin"),
    summary="Erase an account (admin)",
    description="As DELETE /users/me, without a password.",
)
async def erase_user(user_id: str, _: AdminUser, runtime: RuntimeDep) -> None:
    user = await service.get_user(user_id=object_id(user_id, "User"))
    await privacy.erase(user=user, password=None, hasher=runtime.hasher, settings=runtime.settings)
