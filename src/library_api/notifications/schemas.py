from datetime import datetime

from pydantic import BaseModel

from .models import Notification, NotificationKind


class NotificationPublic(BaseModel):
    id: str
    kind: NotificationKind
    loan_id: str | None
    reservation_id: str | None
    message: str
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, notification: Notification) -> "NotificationPublic":
        return cls(
            id=str(notification.id),
            kind=notification.kind,
            loan_id=str(notification.loan_id) if notification.loan_id is not None else None,
            reservation_id=(
                str(notification.reservation_id)
                if notification.reservation_id is not None
                else None
            ),
            message=notification.message,
            created_at=notification.created_at,
            read_at=notification.read_at,
        )


class ScanResult(BaseModel):
    created: int
