"""Which storage backend the service runs on, and its start-up sweep."""

import asyncio

import aiofiles.os

from ..config import Settings
from ..db import Database
from .gridfs_backend import GridFSStorage
from .storage import LocalStorage, Storage, remove_stale_temporaries


async def open_storage(settings: Settings, database: Database) -> Storage:
    storage: Storage
    if settings.storage_backend == "gridfs":
        storage = GridFSStorage(database.db)
        # CSV imports spool into UPLOADS_DIR whatever the backend.
        await asyncio.to_thread(remove_stale_temporaries, settings.uploads_dir)
    else:
        await aiofiles.os.makedirs(settings.uploads_dir, exist_ok=True)
        storage = LocalStorage(settings.uploads_dir)
    await storage.remove_abandoned()
    return storage
