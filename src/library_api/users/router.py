from typing import Annotated

from fastapi import APIRouter, Query, status

from ..db import doc_id, object_id
from ..deps import AdminUser, CurrentAuth, CurrentUser, LibrarianUser, RuntimeDep
from ..errors import AUTH, STAFF, responses
from ..fines import service as fines
from ..pagination import Page, Pagination
from . import service
from .models import Role
from .schemas import PasswordChange, UserAdminUpdate, UserCreate, UserMe, UserPublic, UserSelfUpdate

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserMe, responses=responses(*AUTH), summary="Your account")
async def read_me(user: CurrentUser) -> UserMe:
    active, overdue = await service.loan_counts(user_id=doc_id(user))
    due = await fines.open_balance(user_id=doc_id(user))
    return UserMe(
        **UserPublic.of(user).model_dump(),
        active_loans=active,
        overdue_loans=overdue,
        fines_due_cents=due,
    )


@router.patch(
    "/me", response_model=UserPublic, responses=responses(*AUTH), summary="Change your name"
)
async def update_me(body: UserSelfUpdate, user: CurrentUser) -> UserPublic:
    return UserPublic.of(await service.rename(user=user, name=body.name))


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
