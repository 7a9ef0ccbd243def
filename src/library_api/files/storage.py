"""Where covers and documents live: a folder (`local`) or GridFS (`gridfs`)."""

import asyncio
from pathlib import Path
from typing import Protocol

from ..config import Settings
from ..db import Database


class Storage(Protocol):
    async def delete(self, key: str) -> None:
        """Remove a stored file; a key that is already gone is fine."""


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def delete(self, key: str) -> None:
        await asyncio.to_thread((self.root / key).unlink, missing_ok=True)


def open_storage(settings: Settings, database: Database) -> Storage:
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    return LocalStorage(settings.uploads_dir)
