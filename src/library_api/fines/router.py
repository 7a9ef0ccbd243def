from fastapi import APIRouter

from ..db import doc_id, object_id
from ..deps import CurrentUser, LibrarianUser
from ..errors import AUTH, STAFF, responses
from ..pagination import IdFilter, Page, Pagination
from . import service
from .models import Fine, FineStatus
from .schemas import FinePublic, PaymentRequest, WaiveRequest

router = APIRouter(prefix="/fines", tags=["fines"])


def _page(paging: Pagination, fines: list[Fine], total: int) -> Page[FinePublic]:
    return paging.wrap([FinePublic.of(fine) for fine in fines], total)


@router.get(
    "/me",
    response_model=Page[FinePublic],
    responses=responses(*AUTH),
    summary="Your fines, newest first",
)
async def my_fines(
    user: CurrentUser, paging: Pagination, status: FineStatus | None = None
) -> Page[FinePublic]:
    fines, total = await service.list_fines(
        user_id=doc_id(user), status=status, skip=paging.skip, limit=paging.page_size
    )
    return _page(paging, fines, total)


@router.get(
    "",
    response_model=Page[FinePublic],
    responses=responses(*STAFF),
    summary="All fines, newest first (librarian)",
)
async def list_fines(
    _: LibrarianUser,
    paging: Pagination,
    user_id: IdFilter = None,
    status: FineStatus | None = None,
) -> Page[FinePublic]:
    fines, total = await service.list_fines(
        user_id=user_id,
        status=status,
        skip=paging.skip,
        limit=paging.page_size,
    )
    return _page(paging, fines, total)


@router.post(
    "/{fine_id}/payments",
    response_model=FinePublic,
    responses=responses(*STAFF, "not_found", "fine_closed"),
    summary="Record a payment (librarian)",
    description="`amount_cents` from 1 to the balance, else `422`; the balance reaching 0 makes "
    "the fine `paid`. Parallel payments never take more than the balance.",
)
async def pay_fine(fine_id: str, body: PaymentRequest, user: LibrarianUser) -> FinePublic:
    fine = await service.pay(
        fine_id=object_id(fine_id, "Fine"), amount_cents=body.amount_cents, by=doc_id(user)
    )
    return FinePublic.of(fine)


@router.post(
    "/{fine_id}/waive",
    response_model=FinePublic,
    responses=responses(*STAFF, "not_found", "fine_closed", "fine_busy"),
    summary="Waive what is left of a fine, with a reason (librarian)",
    description="Who waived it, when and why are kept with the fine.",
)
async def waive_fine(fine_id: str, body: WaiveRequest, user: LibrarianUser) -> FinePublic:
    fine = await service.waive(
        fine_id=object_id(fine_id, "Fine"), reason=body.reason, by=doc_id(user)
    )
    return FinePublic.of(fine)
