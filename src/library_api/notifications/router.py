from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from ..auth import service as auth_service
from ..db import doc_id, object_id
from ..deps import AdminUser, CurrentAuth, CurrentUser, RuntimeDep
from ..errors import AUTH, STAFF, AppError, responses
from ..pagination import Page, Pagination
from ..security import AccessClaims
from . import scheduler, service, stream
from .schemas import NotificationPublic, ScanResult

router = APIRouter(tags=["notifications"])


@router.get(
    "/notifications/me",
    response_model=Page[NotificationPublic],
    responses=responses(*AUTH),
    summary="Your notifications, newest first",
)
async def list_my_notifications(
    user: CurrentUser,
    paging: Pagination,
    unread: Annotated[
        bool | None, Query(description="true: only unread ones; false: only read ones")
    ] = None,
) -> Page[NotificationPublic]:
    items, total = await service.list_notifications(
        user_id=doc_id(user), unread=unread, skip=paging.skip, limit=paging.page_size
    )
    return paging.wrap([NotificationPublic.of(n) for n in items], total)


@router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationPublic,
    responses=responses(*AUTH, "not_found"),
    summary="Mark one of your notifications read (again: unchanged)",
)
async def read_notification(notification_id: str, user: CurrentUser) -> NotificationPublic:
    notification = await service.mark_read(
        user_id=doc_id(user), notification_id=object_id(notification_id, "Notification")
    )
    return NotificationPublic.of(notification)


@router.post(
    "/admin/notifications/run",
    response_model=ScanResult,
    responses=responses(*STAFF),
    summary="Run the notification scan now (admin)",
    description="Expires lapsed holds, creates the missing due-soon, overdue and "
    "reservation-ready notifications and mails pending ones when SMTP_URL is set. "
    "`created` counts the notifications this run created.",
)
async def run_notification_scan(_: AdminUser, runtime: RuntimeDep) -> ScanResult:
    return ScanResult(created=await scheduler.run_scan(settings=runtime.settings))


_STREAM_EXAMPLE = (
    f"{stream.OPENING}"
    "id: 6650f5f6d7e8f9a0b1c2d3e4\n"
    "event: notification\n"
    'data: {"id":"6650f5f6d7e8f9a0b1c2d3e4","kind":"reservation_ready","loan_id":null,'
    '"reservation_id":"6650f3d4b5c6d7e8f9a0b1c2","message":"\\"Dune\\", which you reserved, '
    'is ready for you to pick up. It is held for you until 2026-12-09 10:00 UTC.",'
    '"created_at":"2026-12-06T10:00:00Z","read_at":null}\n\n'
    f"{stream.HEARTBEAT}"
)


def _stream_responses() -> dict[int | str, dict[str, Any]]:
    errors = responses(*AUTH, "too_many_streams")
    errors[429]["description"] = "Too many streams open for this account, or in all"
    text = {"description": "Not kept by any cache", "schema": {"type": "string"}}
    return {
        200: {
            "description": "Server-Sent Events, until the session ends or the client leaves",
            "headers": {
                "Cache-Control": {**text, "example": "no-store"},
                "X-Accel-Buffering": {
                    "description": "`no`: a proxy passes each event on at once",
                    "schema": {"type": "string"},
                    "example": "no",
                },
            },
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": _STREAM_EXAMPLE,
                }
            },
        },
        **errors,
    }


@router.get(
    "/notifications/stream",
    status_code=200,
    response_model=None,
    response_class=stream.EventStream,
    responses=_stream_responses(),
    summary="Your new notifications as they come (Server-Sent Events)",
    description=(
        "Each notification of yours created from now on, by any instance, within 5 s: "
        "`id: <notification id>`, `event: notification`, `data: <the Notification JSON of "
        "GET /notifications/me>`. A `Last-Event-ID` header first replays your notifications "
        "whose id is above it. A comment line (`: keep-alive`) comes at least every "
        "`NOTIFY_STREAM_HEARTBEAT_SECONDS` (15 s); the stream ends within 30 s of a logout, "
        "a revoked session or a deactivation (reconnect with `Last-Event-ID`). The token goes "
        "in `Authorization` only, never in the URL: browsers' `EventSource` cannot send it, "
        "so use a fetch-based client (README: Live notifications). At most "
        "`NOTIFY_STREAMS_PER_USER` (3) streams per account and `NOTIFY_STREAMS_TOTAL` (100) "
        "in all per instance; more get `429 too_many_streams` with `Retry-After`."
    ),
)
async def stream_my_notifications(
    request: Request,
    auth: CurrentAuth,
    runtime: RuntimeDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The id of the last event received: the ones after it are sent first",
        ),
    ] = None,
) -> stream.EventStream:
    claims = AccessClaims(user_id=str(auth.session_user_id), session_id=str(auth.session_id))

    async def still_allowed() -> bool:
        try:
            await auth_service.authenticate(claims=claims)
        except AppError:
            return False
        return True

    content = stream.events(
        user_id=auth.session_user_id,
        last_event_id=stream.event_id(last_event_id),
        settings=runtime.settings,
        still_allowed=still_allowed,
        disconnected=request.is_disconnected,
    )
    return stream.open_stream(str(auth.session_user_id), content, runtime.settings)
