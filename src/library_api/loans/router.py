from typing import Any

from fastapi import APIRouter

from .. import clock
from ..db import doc_id, object_id
from ..deps import CurrentUser, LibrarianUser, Runtime, RuntimeDep
from ..errors import AUTH, STAFF, responses
from ..fines import service as fines
from ..pagination import IdFilter, Page, Pagination
from . import history, service
from .models import Loan, LoanStatus
from .schemas import BorrowRequest, DueDateChange, LoanFilter, LoanPublic

router = APIRouter(tags=["loans"])

# An empty body (or none) borrows for the caller; Swagger pre-fills the first example.
_BORROW_EXAMPLES: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "examples": {
                    "for_yourself": {"summary": "Borrow for yourself", "value": {}},
                    "for_a_member": {
                        "summary": "Check out for a member (librarian)",
                        "value": {"user_id": "6650f0a1c4b5d6e7f8091a2b"},
                    },
                }
            }
        }
    }
}


def _public(loan: Loan, runtime: Runtime) -> LoanPublic:
    if loan.status != LoanStatus.active:
        return LoanPublic.of(loan)
    # An overdue loan shows the fine it would carry if returned now.
    owed = fines.fine_cents(due_at=loan.due_at, returned_at=clock.now(), settings=runtime.settings)
    return LoanPublic.of(loan, fine_cents=owed)


def _page(paging: Pagination, loans: list[Loan], total: int, runtime: Runtime) -> Page[LoanPublic]:
    return paging.wrap([_public(loan, runtime) for loan in loans], total)


@router.post(
    "/books/{book_id}/borrow",
    status_code=201,
    response_model=LoanPublic,
    responses=responses(
        *AUTH,
        "forbidden",
        "not_found",
        "has_overdue_loans",
        "fines_outstanding",
        "already_borrowed",
        "loan_limit_reached",
        "no_copies_available",
        (409, "account_disabled"),
    ),
    openapi_extra=_BORROW_EXAMPLES,
    summary="Borrow a copy (a librarian may check out for a member with user_id)",
    description="`409` codes: `has_overdue_loans`, `already_borrowed`, `loan_limit_reached`, "
    "`no_copies_available` (in that order of precedence); `account_disabled` when a librarian "
    "names a deactivated account. A reader with a ready reservation gets the copy held for them. "
    "A member naming any `user_id` but its own gets `403`; a librarian naming a malformed or "
    "unknown one `404`.",
)
async def borrow_book(
    book_id: str, user: CurrentUser, runtime: RuntimeDep, body: BorrowRequest | None = None
) -> LoanPublic:
    loan = await service.borrow(
        book_id=object_id(book_id, "Book"),
        actor=user,
        user_id=body.user_id if body else None,
        settings=runtime.settings,
    )
    return _public(loan, runtime)


@router.post(
    "/books/{book_id}/return",
    response_model=LoanPublic,
    responses=responses(*AUTH, "not_found", "no_active_loan"),
    summary="Return your active loan of a book",
)
async def return_book(book_id: str, user: CurrentUser, runtime: RuntimeDep) -> LoanPublic:
    loan = await service.return_book(
        book_id=object_id(book_id, "Book"), user=user, settings=runtime.settings
    )
    return _public(loan, runtime)


@router.get(
    "/loans/me",
    response_model=Page[LoanPublic],
    responses=responses(*AUTH),
    summary="Your loans, newest first",
)
async def list_my_loans(
    user: CurrentUser, runtime: RuntimeDep, paging: Pagination, status: LoanFilter | None = None
) -> Page[LoanPublic]:
    loans, total = await history.list_loans(
        user_id=doc_id(user), book_id=None, status=status, skip=paging.skip, limit=paging.page_size
    )
    return _page(paging, loans, total, runtime)


@router.get(
    "/loans",
    response_model=Page[LoanPublic],
    responses=responses(*STAFF),
    summary="Find loans, newest first (librarian)",
)
async def list_loans(
    _: LibrarianUser,
    runtime: RuntimeDep,
    paging: Pagination,
    user_id: IdFilter = None,
    book_id: IdFilter = None,
    status: LoanFilter | None = None,
) -> Page[LoanPublic]:
    loans, total = await history.list_loans(
        user_id=user_id,
        book_id=book_id,
        status=status,
        skip=paging.skip,
        limit=paging.page_size,
    )
    return _page(paging, loans, total, runtime)


@router.get(
    "/loans/{loan_id}",
    response_model=LoanPublic,
    responses=responses(*AUTH, "not_found"),
    summary="A loan (its reader or a librarian)",
)
async def get_loan(loan_id: str, user: CurrentUser, runtime: RuntimeDep) -> LoanPublic:
    loan = await service.get_loan(loan_id=object_id(loan_id, "Loan"), actor=user)
    return _public(loan, runtime)


@router.patch(
    "/loans/{loan_id}",
    response_model=LoanPublic,
    responses=responses(*STAFF, "not_found", "already_returned"),
    summary="Correct or extend a loan's due date (librarian)",
    description="The new due date may lie in the past (a correction) but must be after the "
    "loan was borrowed, else 422. It is not a renewal; overdue state, notices and the fine at "
    "the return follow it. A returned loan cannot change: 409 already_returned.",
)
async def change_due_date(
    loan_id: str, body: DueDateChange, _: LibrarianUser, runtime: RuntimeDep
) -> LoanPublic:
    loan = await service.set_due_date(loan_id=object_id(loan_id, "Loan"), due_at=body.due_at)
    return _public(loan, runtime)


@router.post(
    "/loans/{loan_id}/return",
    response_model=LoanPublic,
    responses=responses(*AUTH, "not_found", "already_returned"),
    summary="Return a loan (its reader or a librarian)",
)
async def return_loan(loan_id: str, user: CurrentUser, runtime: RuntimeDep) -> LoanPublic:
    loan = await service.return_loan(
        loan_id=object_id(loan_id, "Loan"), actor=user, settings=runtime.settings
    )
    return _public(loan, runtime)


@router.post(
    "/loans/{loan_id}/renew",
    response_model=LoanPublic,
    responses=responses(
        *AUTH,
        "not_found",
        "already_returned",
        "renewal_limit_reached",
        "loan_overdue",
        "reserved_by_others",
        "fines_outstanding",
    ),
    summary="Renew a loan (its reader or a librarian)",
    description="`409` codes: `already_returned`, `renewal_limit_reached`, `loan_overdue` "
    "(members only; a librarian may renew an overdue loan), `reserved_by_others` (another "
    "reader is waiting for the book).",
)
async def renew_loan(loan_id: str, user: CurrentUser, runtime: RuntimeDep) -> LoanPublic:
    loan = await service.renew(
        loan_id=object_id(loan_id, "Loan"), actor=user, settings=runtime.settings
    )
    return _public(loan, runtime)
