"""The backend a [storage] section names."""

from __future__ import annotations

from dlsupervisor.storage.base import Storage
from dlsupervisor.storage.config import StorageSettings


def open_storage(settings: StorageSettings, **options: float) -> Storage:
    """`options` (s3 only: timeout, attempts) let the scheduler's deletions give up sooner."""
    if settings.backend == "s3":
        from dlsupervisor.storage.s3 import S3Storage

        return S3Storage(settings, **options)  # type: ignore[arg-type]
    from dlsupervisor.storage.local import LocalStorage

    return LocalStorage(settings)
