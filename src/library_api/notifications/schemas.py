from datetime import datetime

from pydantic import BaseModel, ConfigDict

from .models import Notification, NotificationKind


class NotificationPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6650f5f6d7e8f9a0b1c2d3e4",
                    "kind": "due_soon",
                    "loan_id": "6650f3d4b5c6d7e8f9a0b1c2",
                    "reservation_id": None,
                    "message": "Pride and Prejudice is due back on 2026-12-07.",
                    "created_at": "2026-12-06T10:00:00Z",
                    "read_at": None,
                }
            ]
        }
    )

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
    model_config = ConfigDict(json_schema_extra={"examples": [{"created": 3}]})

    created: int
