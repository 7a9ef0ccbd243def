"""`STORAGE_BACKEND` chooses where files live; start-up sweeps what a crash left on either."""

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from tests.conftest import Account
from tests.files.conftest import PDF, Files, sized


def test_gridfs_instances_share_their_files(
    app_with: Callable[..., Any], librarian: Account, raw_db: Any, settings: Any
) -> None:
    uploads = Path(settings.uploads_dir)
    content, replacement = sized(PDF, 300_000), sized(PDF, 2000)
    with app_with(storage_backend="gridfs") as first:
        files = Files(first, "gridfs", librarian, uploads, raw_db)
        book_id = files.book()
        assert files.put(book_id, "document", content, "shared.pdf").status_code == 200
        assert list(uploads.iterdir()) == []
    with app_with(storage_backend="gridfs") as second:
        files = Files(second, "gridfs", librarian, uploads, raw_db)
        served = files.get(book_id, "document")
        assert (served.status_code, served.content) == (200, content)
        # Replaced through this instance: the file the first one stored goes from MongoDB.
        assert files.put(book_id, "document", replacement).status_code == 200
        assert files.get(book_id, "document").content == replacement
        files.assert_consistent()
        assert raw_db["files.files"].count_documents({}) == 1


@pytest.mark.parametrize("backend", ["local", "gridfs"])
def test_start_up_removes_only_abandoned_temporary_files(
    app_with: Callable[..., Any], settings: Any, backend: str
) -> None:
    # An upload's, or on either backend a CSV import's.
    uploads = Path(settings.uploads_dir)
    abandoned, in_progress = uploads / ".tmp-import-abandoned", uploads / ".tmp-in-progress"
    abandoned.write_bytes(b"half an upload")
    in_progress.write_bytes(b"an upload another instance is receiving")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(abandoned, (two_days_ago, two_days_ago))
    with app_with(storage_backend=backend):
        assert sorted(p.name for p in uploads.iterdir()) == [".tmp-in-progress"]


def test_start_up_removes_only_abandoned_gridfs_chunks(
    app_with: Callable[..., Any], raw_db: Any
) -> None:
    now = datetime.now(UTC)
    abandoned = ObjectId.from_datetime(now - timedelta(days=2))
    stored = ObjectId.from_datetime(now - timedelta(days=3))
    in_progress = ObjectId()
    raw_db["files.chunks"].insert_many(
        [
            {"files_id": abandoned, "n": 0, "data": b"half an upload"},
            {"files_id": abandoned, "n": 1, "data": b"more of it"},
            {"files_id": stored, "n": 0, "data": b"a whole file"},
            {"files_id": in_progress, "n": 0, "data": b"an upload another instance receives"},
        ]
    )
    raw_db["files.files"].insert_one(
        {"_id": stored, "length": 12, "chunkSize": 261120, "uploadDate": now, "filename": "x"}
    )
    with app_with(storage_backend="gridfs"):
        left = sorted(str(c["files_id"]) for c in raw_db["files.chunks"].find())
    assert left == sorted([str(stored), str(in_progress)])
