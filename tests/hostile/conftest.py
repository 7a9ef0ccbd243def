"""The files domain's fixtures, for the hostile tests that upload and download."""

from tests.files.conftest import backend, files

__all__ = ["backend", "files"]
