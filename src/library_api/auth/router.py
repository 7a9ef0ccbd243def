from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from ..db import object_id
from ..deps import CurrentAuth, RuntimeDep
from ..errors import responses
from ..pagination import Page, Pagination
from ..users import service as users_service
from ..users.models import Role
from ..users.schemas import UserPublic, UserRegister
from . import service
from .schemas import RefreshRequest, SessionPublic, TokenPair

router = APIRouter(prefix="/auth", tags=["auth"])


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=responses(409),
    summary="Create a member account",
)
async def register(body: UserRegister, runtime: RuntimeDep) -> UserPublic:
    user = await users_service.create_user(
        name=body.name,
        email=body.email,
        password=body.password,
        role=Role.member,
        hasher=runtime.hasher,
    )
    return UserPublic.of(user)


@router.post(
    "/login",
    response_model=TokenPair,
    responses=responses(401, 403, 429),
    summary="Log in with email (as `username`) and password",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    response: Response,
    runtime: RuntimeDep,
) -> TokenPair:
    _no_store(response)
    return await service.login(
        email=form.username,
        password=form.password,
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
        settings=runtime.settings,
        hasher=runtime.hasher,
        signer=runtime.signer,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=responses(401),
    summary="Trade a refresh token for a new pair",
)
async def refresh(body: RefreshRequest, response: Response, runtime: RuntimeDep) -> TokenPair:
    _no_store(response)
    return await service.refresh(refresh_token=body.refresh_token, signer=runtime.signer)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401),
    summary="End the current session",
)
async def logout(auth: CurrentAuth) -> None:
    await service.logout(session_id=auth.session_id)


@router.get(
    "/sessions",
    response_model=Page[SessionPublic],
    responses=responses(401),
    summary="List your live sessions",
)
async def list_sessions(auth: CurrentAuth, paging: Pagination) -> Page[SessionPublic]:
    sessions, total = await service.list_sessions(
        user_id=auth.session_user_id, skip=paging.skip, limit=paging.page_size
    )
    items = [
        SessionPublic(
            id=str(s.id),
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            user_agent=s.user_agent,
            ip=s.ip,
            current=s.id == auth.session_id,
        )
        for s in sessions
    ]
    return paging.wrap(items, total)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 404),
    summary="Revoke one of your sessions",
)
async def revoke_session(session_id: str, auth: CurrentAuth) -> None:
    await service.revoke_session(
        user_id=auth.session_user_id, session_id=object_id(session_id, "Session")
    )
