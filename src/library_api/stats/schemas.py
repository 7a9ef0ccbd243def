from pydantic import BaseModel, Field


class BorrowedBook(BaseModel):
    book_id: str
    title: str
    loans: int = Field(description="Loans ever made of this book, returned ones included")


class LibraryStats(BaseModel):
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
