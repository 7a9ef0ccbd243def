from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from ..db import object_id
from ..deps import CurrentAuth, RuntimeDep
from ..errors import AUTH, AppError, responses
from ..pagination import Page, Pagination
from ..users import service as users_service
from ..users.models import Role
from ..users.schemas import UserPublic, UserRegister
from . import service
from .schemas import RefreshRequest, SessionPublic, TokenPair

router = APIRouter(prefix="/auth", tags=["auth"])


# Login refusals also carry OAuth2's `error` and `error_description` (RFC 6749 section 5.2), so
# an OAuth2 client such as Swagger's Authorize dialog can say why.
_OAUTH_ERRORS = {
    "invalid_credentials": "invalid_grant",
    "account_disabled": "invalid_grant",
    "too_many_attempts": "invalid_grant",
}


def _login_errors() -> dict[int | str, dict[str, Any]]:
    entries = responses(*_OAUTH_ERRORS)
    for entry in entries.values():
        content = entry["content"]["application/json"]
        schema = content["schema"]
        schema["required"] = [*schema["required"], "error", "error_description"]
        schema["properties"]["error"] = {
            "type": "string",
            "enum": sorted(set(_OAUTH_ERRORS.values())),
            "description": "OAuth2's error code (RFC 6749 section 5.2)",
        }
        schema["properties"]["error_description"] = {
            "type": "string",
            "description": "The same text as `detail`",
        }
        for example in content["examples"].values():
            value = example["value"]
            value.update(error=_OAUTH_ERRORS[value["code"]], error_description=value["detail"])
    return entries


_LOGIN_ERRORS = _login_errors()


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=responses("email_taken", "weak_password"),
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
    responses=_LOGIN_ERRORS,
    summary="Log in with your email (as username) and password",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    response: Response,
    runtime: RuntimeDep,
) -> TokenPair:
    _no_store(response)
    try:
        return await service.login(
            email=form.username,
            password=form.password,
            user_agent=request.headers.get("user-agent"),
            ip=request.client.host if request.client else None,
            settings=runtime.settings,
            hasher=runtime.hasher,
            signer=runtime.signer,
        )
    except AppError as exc:
        if exc.code not in _OAUTH_ERRORS:
            raise
        oauth = {"error": _OAUTH_ERRORS[exc.code], "error_description": exc.detail}
        raise AppError(exc.status, exc.code, exc.detail, exc.headers, oauth) from None


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=responses("invalid_token"),
    summary="Trade a refresh token for a new pair",
)
async def refresh(body: RefreshRequest, response: Response, runtime: RuntimeDep) -> TokenPair:
    _no_store(response)
    return await service.refresh(refresh_token=body.refresh_token, signer=runtime.signer)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(*AUTH),
    summary="End the current session",
)
async def logout(auth: CurrentAuth) -> None:
    await service.logout(session_id=auth.session_id)


@router.get(
    "/sessions",
    response_model=Page[SessionPublic],
    responses=responses(*AUTH),
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
    responses=responses(*AUTH, "not_found"),
    summary="Revoke one of your sessions",
)
async def revoke_session(session_id: str, auth: CurrentAuth) -> None:
    await service.revoke_session(
        user_id=auth.session_user_id, session_id=object_id(session_id, "Session")
    )
