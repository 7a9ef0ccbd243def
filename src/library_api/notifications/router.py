from typing import Annotated

from fastapi import APIRouter, Query

from ..db import doc_id, object_id
from ..deps import AdminUser, CurrentUser, RuntimeDep
from ..errors import AUTH, STAFF, responses
from ..pagination import Page, Pagination
from . import scheduler, service
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
