from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

_TOP: JsonDict = {
    "book_id": "6650f1c2a4b5c6d7e8f90123",
    "title": "Pride and Prejudice",
    "loans": 42,
}


class BorrowedBook(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_TOP]})

    book_id: str
    title: str
    loans: int = Field(description="Loans ever made of this book, returned ones included")


class LibraryStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "books": 56,
                    "copies": 131,
                    "members": 212,
                    "active_loans": 37,
                    "overdue_loans": 4,
                    "waiting_reservations": 9,
                    "top_borrowed": [_TOP],
                }
            ]
        }
    )

    books: int = Field(description="Catalogue entries")
    copies: int = Field(description="Sum of every book's total_copies")
    members: int = Field(description="Active users with the member role")
    active_loans: int = Field(description="Loans not returned yet, overdue ones included")
    overdue_loans: int
    waiting_reservations: int
    top_borrowed: list[BorrowedBook] = Field(
        description="At most 10 catalogued books with the most loans ever, most first "
        "(ties by title, then id)"
    )
