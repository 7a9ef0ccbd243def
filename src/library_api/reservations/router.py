from fastapi import APIRouter, status

from ..db import doc_id, object_id
from ..deps import CurrentUser, LibrarianUser, RuntimeDep
from ..errors import AUTH, STAFF, responses
from ..pagination import IdFilter, Page, Pagination
from . import service
from .models import ReservationStatus
from .schemas import ReservationPublic

router = APIRouter(tags=["reservations"])


def _page(
    paging: Pagination, found: list[service.Positioned], total: int
) -> Page[ReservationPublic]:
    return paging.wrap([ReservationPublic.of(r, position) for r, position in found], total)


@router.post(
    "/books/{book_id}/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationPublic,
    responses=responses(
        *AUTH, "not_found", "copies_available", "already_reserved", "already_borrowed"
    ),
    summary="Join the queue for a book with no copy on the shelf",
)
async def reserve_book(book_id: str, user: CurrentUser, runtime: RuntimeDep) -> ReservationPublic:
    reservation, position = await service.reserve(
        book_id=object_id(book_id, "Book"), user=user, settings=runtime.settings
    )
    return ReservationPublic.of(reservation, position)


@router.get(
    "/reservations/me",
    response_model=Page[ReservationPublic],
    responses=responses(*AUTH),
    summary="Your reservations, newest first",
)
async def list_my_reservations(
    user: CurrentUser,
    paging: Pagination,
    runtime: RuntimeDep,
    status: ReservationStatus | None = None,
) -> Page[ReservationPublic]:
    found, total = await service.list_reservations(
        user_id=doc_id(user),
        book_id=None,
        status=status,
        skip=paging.skip,
        limit=paging.page_size,
        settings=runtime.settings,
    )
    return _page(paging, found, total)


@router.get(
    "/reservations",
    response_model=Page[ReservationPublic],
    responses=responses(*STAFF),
    summary="Find reservations, newest first (librarian)",
)
async def list_reservations(
    _: LibrarianUser,
    paging: Pagination,
    runtime: RuntimeDep,
    book_id: IdFilter = None,
    user_id: IdFilter = None,
    status: ReservationStatus | None = None,
) -> Page[ReservationPublic]:
    found, total = await service.list_reservations(
        user_id=user_id,
        book_id=book_id,
        status=status,
        skip=paging.skip,
        limit=paging.page_size,
        settings=runtime.settings,
    )
    return _page(paging, found, total)


@router.delete(
    "/reservations/{reservation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(*AUTH, "not_found", "reservation_closed"),
    summary="Cancel a reservation (its reader or a librarian)",
    description="A ready reservation's copy goes to the next reader in line or back on the "
    "shelf. A reservation that is no longer open gives `409 reservation_closed`.",
)
async def cancel_reservation(reservation_id: str, user: CurrentUser, runtime: RuntimeDep) -> None:
    await service.cancel(
        reservation_id=object_id(reservation_id, "Reservation"),
        actor=user,
        settings=runtime.settings,
    )
