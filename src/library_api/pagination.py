"""`?page=&page_size=` parameters and the page envelope every list returns."""

from dataclasses import dataclass
from typing import Annotated

from beanie import PydanticObjectId
from fastapi import Depends, Query
from pydantic import BaseModel

from .db import object_id
from .errors import AppError

MAX_SKIP = 2**31 - 1


class Page[T](BaseModel):
    items: list[T]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True, slots=True)
class PageParams:
    page: int
    page_size: int

    @property
    def skip(self) -> int:
        # Any page past the end is empty; capping keeps the skip a valid 32-bit count.
        return min((self.page - 1) * self.page_size, MAX_SKIP)

    def wrap[T](self, items: list[T], total: int) -> Page[T]:
        return Page[T](items=items, total=total, page=self.page, page_size=self.page_size)


def _page_params(
    page: Annotated[int, Query(ge=1, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=100, description="Items per page")] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


Pagination = Annotated[PageParams, Depends(_page_params)]


# A list's filter by id, read by `id_filters`.
IdFilter = Annotated[
    str | None, Query(description="An id; a malformed one matches nothing (empty page).")
]


def id_filters(**ids: PydanticObjectId | str | None) -> dict[str, PydanticObjectId] | None:
    """Query clauses for a list's filters by id (loans, reservations, fines); None when a
    client's id is malformed.

    A malformed id names nothing, so the list is empty rather than a 422. An empty string is
    a filter left out.
    """
    clauses: dict[str, PydanticObjectId] = {}
    for field, value in ids.items():
        if isinstance(value, str):
            if not value:
                continue
            try:
                value = object_id(value, field)
            except AppError:
                return None
        if value is not None:
            clauses[field] = value
    return clauses
