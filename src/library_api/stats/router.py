from fastapi import APIRouter

from ..deps import LibrarianUser
from ..errors import STAFF, responses
from . import service
from .schemas import LibraryStats

router = APIRouter(tags=["stats"])


@router.get(
    "/stats",
    response_model=LibraryStats,
    responses=responses(*STAFF),
    summary="Library-wide figures (librarian)",
)
async def get_stats(_: LibrarianUser) -> LibraryStats:
    return await service.library_stats()
