"""The CSV import's writes: rows checked like `POST /books`, written in timed batches.

Apart from the catalogue's service because it is a job of its own (batching, pacing, stopping
when its client goes); it creates books exactly as `service.create_book` does (`new_book`,
`creation`), so the two cannot drift.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from time import monotonic

from pydantic import ValidationError
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from .. import clock
from ..db import long_operation
from ..errors import AppError
from . import importer
from .models import Book
from .schemas import BookCreate, ImportReport, ImportRowError
from .service import creation, new_book

logger = logging.getLogger("library_api")

# Rows written per round trip by an import: at most IMPORT_BATCH, fewer when a batch takes
# longer than IMPORT_BATCH_SECONDS. The embedded engine runs one command at a time, so the
# time one batch takes is how long every other request may wait behind the import.
IMPORT_BATCH = 100
IMPORT_FIRST_BATCH = 10
IMPORT_BATCH_SECONDS = 0.25


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()
    )


async def _insert_batch(batch: list[Book]) -> tuple[int, int]:
    """(created, skipped): a book whose ISBN is already catalogued is skipped, not an error."""
    writes = [UpdateOne(*creation(book), upsert=True) for book in batch]
    try:
        # A batch sized to IMPORT_BATCH_SECONDS can outgrow the default bound on a busy engine.
        with long_operation():
            result = await Book.get_pymongo_collection().bulk_write(writes, ordered=False)
    except BulkWriteError as exc:
        # Two imports of one ISBN at once: the unique index refuses the later upsert.
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        created = int(exc.details.get("nUpserted", 0))
        return created, len(batch) - created
    return result.upserted_count, len(batch) - result.upserted_count


async def _waited_for() -> bool:
    return False


async def import_books(
    *, upload: importer.Upload, gone: Callable[[], Awaitable[bool]] = _waited_for
) -> ImportReport:
    """Create a book from each valid row of a CSV upload; see importer.py for the format.

    The file is read twice: once to check that it is CSV at all (422, nothing created), then
    to import it in batches. Duplicates, within the file or with the catalogue, are left to
    the unique ISBN index, so parallel imports cannot create a book twice. Before each batch
    `gone()` is asked whether the client is still there: an import nobody waits for stops.
    A stopped or cancelled import keeps the rows it created, and the log says how many.
    """
    async for _ in importer.read_rows(upload):
        pass
    await upload.seek(0)
    now = clock.now()
    report = ImportReport(created=0, skipped=0, errors=[])
    batch: list[Book] = []
    size = IMPORT_FIRST_BATCH
    try:
        async for row in importer.read_rows(upload):
            if row.values is None:
                detail = row.problem or "Malformed row"
                report.errors.append(ImportRowError(row=row.number, detail=detail))
                continue
            try:
                data = BookCreate.model_validate(importer.book_fields(row.values))
                batch.append(new_book(data, now=now))
            except ValidationError as exc:
                report.errors.append(ImportRowError(row=row.number, detail=_describe(exc)))
            except AppError as exc:
                report.errors.append(ImportRowError(row=row.number, detail=exc.detail))
            if len(batch) >= size:
                size = await _import_batch(batch, report, gone)
                batch = []
        if batch:
            await _import_batch(batch, report, gone)
    except _ClientGoneError:
        _log_stopped("the client went away", report)
        raise
    except asyncio.CancelledError:
        _log_stopped("cancelled", report)
        raise
    return report


class _ClientGoneError(AppError):
    def __init__(self) -> None:
        super().__init__(400, "client_disconnected", "The client went away during the import")


def _log_stopped(why: str, report: ImportReport) -> None:
    logger.warning(
        "import stopped (%s): %d books created, %d skipped, %d rows refused so far",
        why,
        report.created,
        report.skipped,
        len(report.errors),
    )


def _next_size(size: int, took: float) -> int:
    """The next batch's size: what fits in IMPORT_BATCH_SECONDS at this batch's pace.

    Writes get slower as the catalogue grows on the embedded engine; on MongoDB the batches
    soon reach IMPORT_BATCH. Growth is at most doubling, so one quick batch is no licence.
    """
    fits = int(size * IMPORT_BATCH_SECONDS / took) if took > 0 else IMPORT_BATCH
    return max(1, min(IMPORT_BATCH, 2 * size, fits))


async def _import_batch(
    batch: list[Book], report: ImportReport, gone: Callable[[], Awaitable[bool]]
) -> int:
    """Write one batch into the report; the size the next one should have."""
    if await gone():
        raise _ClientGoneError
    began = monotonic()
    # A cancellation waits for the batch already sent, so that the count logged is exact.
    inserting = asyncio.ensure_future(_insert_batch(batch))
    try:
        created, skipped = await asyncio.shield(inserting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            created, skipped = await inserting
            report.created += created
            report.skipped += skipped
        raise
    report.created += created
    report.skipped += skipped
    size = _next_size(len(batch), monotonic() - began)
    # Between two batches the requests that queued behind this one run first.
    await asyncio.sleep(0)
    return size
