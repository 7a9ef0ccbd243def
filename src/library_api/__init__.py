"""library-api: the backend a library runs its catalogue, members and lending on."""

__version__ = "0.1.0"
