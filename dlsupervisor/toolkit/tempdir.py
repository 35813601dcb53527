"""Each worker's private temporary directory, `{storage path}/.tmp/worker-PID` (contract.md §7).

Files are made here and moved or uploaded only when the export succeeds; what a
killed worker leaves is removed by the master when it replaces the worker.
"""

from __future__ import annotations

import os
import shutil

from dlsupervisor.storage.config import StorageSettings


def worker_dir(storage: StorageSettings, pid: int) -> str:
    return os.path.join(storage.tmp_root, f"worker-{pid}")


def fresh(path: str) -> str:
    """An empty private directory at `path` (a reused pid's leftovers removed)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def remove_worker_dir(storage: StorageSettings, pid: int) -> None:
    """The master, for a child that ended: never raises, the master's loop must not stop."""
    shutil.rmtree(worker_dir(storage, pid), ignore_errors=True)
