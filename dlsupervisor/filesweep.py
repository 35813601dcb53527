"""The scheduler's deletion of stored files once their item is EXPIRED or its task CANCELLED
(contract.md §7, `delete_expired`).

Storage calls run in a background thread, one batch at a time, so a slow or
unreachable storage never holds up a pass; the pass itself only reads the due
rows and writes back the results of the batch that finished.  A batch stops
at the first storage error: the rest are retried with back-off.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from dlsupervisor.storage.base import Storage, StorageError
from dlsupervisor.storage.config import StorageSettings
from dlsupervisor.storage.open import open_storage
from dlsupervisor.store import DueFile, SchedulerStore

log = logging.getLogger("dlsupervisor.scheduler")

RECHECK = 3600.0  # a due file whose item is still live (DONE, or running again): look again then
MAX_BACKOFF = 3600.0


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 30 s, 1 min, 2 min... 1 h."""
    return min(MAX_BACKOFF, 30.0 * 2 ** max(0, attempts))


@dataclass
class Batch:
    """One background run over due files: what it deleted, what failed, and the first error."""

    files: Sequence[DueFile]
    deleted: list[int] = field(default_factory=list)
    failed: list[DueFile] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, storage: Storage) -> None:
        try:
            for index, due in enumerate(self.files):
                try:
                    storage.delete(due.key)
                except StorageError as exc:
                    self.error = str(exc)
                    self.failed = list(self.files[index:])
                    return
                self.deleted.append(due.item_id)
        finally:
            self.done.set()


class FileSweeper:
    def __init__(self, settings: StorageSettings, store: SchedulerStore, limit: int) -> None:
        self.settings = settings
        self.store = store
        self.limit = limit
        self._storage: Storage | None = None
        self.batch: Batch | None = None
        self._failing = False

    def storage(self) -> Storage:
        if self._storage is None:  # quick to give up: the next try is the back-off's business
            self._storage = open_storage(self.settings, timeout=5.0, attempts=2)
        return self._storage

    def step(self) -> int:
        """Apply the finished batch, start the next; the number of files deleted."""
        deleted = 0
        if self.batch is not None and self.batch.done.is_set():
            deleted = self.apply(self.batch)
            self.batch = None
        if self.batch is not None:
            return deleted
        due = self.store.files_due(self.limit)
        live = [f.item_id for f in due if not f.deletable]
        self.store.files_later(live, RECHECK, failed=False)
        doomed = [f for f in due if f.deletable]
        if doomed:
            self.start(Batch(doomed))
        return deleted

    def start(self, batch: Batch) -> None:
        def run() -> None:
            try:
                batch.run(self.storage())
            except StorageError as exc:  # the backend could not even be opened
                batch.error, batch.failed = str(exc), list(batch.files)
                batch.done.set()

        self.batch = batch
        threading.Thread(target=run, name="dlsupervisor-filesweep", daemon=True).start()

    def apply(self, batch: Batch) -> int:
        self.store.files_deleted(batch.deleted)
        by_attempts: dict[int, list[int]] = defaultdict(list)
        for due in batch.failed:
            by_attempts[due.attempts].append(due.item_id)
        for attempts, ids in by_attempts.items():
            self.store.files_later(ids, backoff(attempts), failed=True)
        if batch.deleted:
            log.info("deleted %d expired files", len(batch.deleted))
        if batch.error and not self._failing:
            log.warning("storage: cannot delete expired files (%s); retrying later", batch.error)
        elif not batch.error and self._failing:
            log.info("storage: deleting expired files again")
        self._failing = batch.error is not None
        return len(batch.deleted)

    def wait(self, timeout: float = 10.0) -> None:
        """Tests: let the running batch finish."""
        if self.batch is not None:
            self.batch.done.wait(timeout)
