"""Beanie documents of this domain."""

from beanie import Document

DOCUMENTS: list[type[Document]] = []
