"""The interface every storage backend implements, and the one error it raises."""

from __future__ import annotations

from typing import Protocol

MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4 presigned urls live at most 7 days


class StorageError(Exception):
    """A storage operation failed (after the client's own retries): the item fails with
    `export failed: storage: ...`; the scheduler retries a deletion later."""


class Storage(Protocol):
    def put(self, path: str, key: str) -> None:
        """Move or upload the finished file at `path` (in the worker's temporary directory) to `key`."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; a key already gone is not an error."""
        ...

    def link(self, key: str, expires_in: int) -> str:
        """The url written to download_item for `key`, valid at least `expires_in` seconds."""
        ...


def describe(exc: BaseException) -> str:
    """One line for an underlying error: its type and message, never a payload."""
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
