from fastapi import APIRouter, status

from ..db import object_id
from ..deps import CurrentUser, LibrarianUser
from ..errors import responses
from . import service
from .schemas import BookCreate, BookPublic

router = APIRouter(prefix="/books", tags=["books"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BookPublic,
    responses=responses(401, 403, 409),
    summary="Add a book to the catalogue (librarian)",
    description="`422 invalid_isbn` when the ISBN's checksum does not hold; "
    "`409 isbn_taken` when the ISBN is already catalogued.",
)
async def create_book(body: BookCreate, _: LibrarianUser) -> BookPublic:
    return BookPublic.of(await service.create_book(data=body))


@router.get(
    "/{book_id}",
    response_model=BookPublic,
    responses=responses(401, 404),
    summary="One book",
)
async def get_book(book_id: str, _: CurrentUser) -> BookPublic:
    return BookPublic.of(await service.get_book(book_id=object_id(book_id, "Book")))
