from datetime import datetime

from pydantic import BaseModel, ConfigDict

from .models import Reservation, ReservationStatus


class ReservationPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6650f4e5c6d7e8f9a0b1c2d3",
                    "book_id": "6650f1c2a4b5c6d7e8f90123",
                    "user_id": "6650f0a1c4b5d6e7f8091a2b",
                    "status": "waiting",
                    "position": 2,
                    "created_at": "2026-11-23T10:00:00Z",
                    "ready_until": None,
                }
            ]
        }
    )

    id: str
    book_id: str
    user_id: str
    status: ReservationStatus
    # 1-based place among the book's waiting reservations, oldest first; None unless waiting.
    position: int | None
    created_at: datetime
    ready_until: datetime | None

    @classmethod
    def of(cls, reservation: Reservation, position: int | None) -> "ReservationPublic":
        return cls(
            id=str(reservation.id),
            book_id=str(reservation.book_id),
            user_id=str(reservation.user_id),
            status=reservation.status,
            position=position,
            created_at=reservation.created_at,
            ready_until=reservation.ready_until,
        )
