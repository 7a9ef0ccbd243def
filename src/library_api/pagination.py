"""`?page=&page_size=` parameters and the page envelope every list returns."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel

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
