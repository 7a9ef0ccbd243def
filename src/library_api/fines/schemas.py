from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .models import Fine, FineStatus


class FinePublic(BaseModel):
    id: str
    user_id: str | None
    loan_id: str
    book_title: str
    amount_cents: int
    paid_cents: int
    waived_cents: int
    balance_cents: int
    currency: str
    status: FineStatus
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6751a1f0c2b3d4e5f6a7b8c9",
                    "user_id": "6751a0e1c2b3d4e5f6a7b801",
                    "loan_id": "6751a1f0c2b3d4e5f6a7b8c9",
                    "book_title": "Pride and Prejudice",
                    "amount_cents": 150,
                    "paid_cents": 50,
                    "waived_cents": 0,
                    "balance_cents": 100,
                    "currency": "EUR",
                    "status": "open",
                    "created_at": "2026-11-23T10:00:00Z",
                    "updated_at": "2026-11-24T09:30:00Z",
                }
            ]
        }
    )

    @classmethod
    def of(cls, fine: Fine) -> "FinePublic":
        return cls(
            id=str(fine.id),
            user_id=str(fine.user_id) if fine.user_id else None,
            loan_id=str(fine.id),
            book_title=fine.book_title,
            amount_cents=fine.amount_cents,
            paid_cents=fine.paid_cents,
            waived_cents=fine.waived_cents,
            balance_cents=fine.balance_cents,
            currency=fine.currency,
            status=fine.status,
            created_at=fine.created_at,
            updated_at=fine.updated_at,
        )


class PaymentRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount_cents": 100}]})

    amount_cents: int = Field(ge=1, le=10**9, examples=[100])


class WaiveRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "First late return; waived at the desk"}]}
    )

    reason: str = Field(
        min_length=1, max_length=500, examples=["First late return; waived at the desk"]
    )
