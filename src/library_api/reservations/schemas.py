from datetime import datetime

from pydantic import BaseModel

from .models import Reservation, ReservationStatus


class ReservationPublic(BaseModel):
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
