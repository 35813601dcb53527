"""The store: every SQL statement lives behind these interfaces (architecture.md, "Backends").

Each method is one short statement (or one transaction), parameterised, and
every transition is conditional on the state it expects (architecture.md, invariant 2),
returning whether it applied.  Connection loss surfaces as StoreUnavailable;
callers decide whether to retry (workers, scheduler) or to try again next
tick (the master, whose loop must never block).

The interfaces are by role: each process type annotates with the narrow one it
uses; `Store` is all of them, what `open_store` returns.  sql.py writes the
statements once; mysql.py and sqlite.py are its two backends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from dlsupervisor.config import DatabaseSettings
from dlsupervisor.election import LockStore
from dlsupervisor.model import DownloadItem, DownloadTaskMain
from dlsupervisor.registry import Registration, RegistrationStore
from dlsupervisor.store.records import (
    Claim,
    Decision,
    DueFile,
    ItemRef,
    NoticeRef,
    Outcome,
    Progress,
    ProgressReport,
    Recording,
    SplitCommit,
    Tally,
    TaskSummary,
)

__all__ = [
    "ApplicationStore",
    "Claim",
    "Decision",
    "DueFile",
    "ItemRef",
    "MasterStore",
    "Outcome",
    "PollingStore",
    "Recording",
    "Progress",
    "ProgressReport",
    "Registration",
    "SchedulerStore",
    "SplitCommit",
    "Store",
    "Tally",
    "TaskSummary",
    "WorkerStore",
    "open_store",
]


class Connected(Protocol):
    def ping(self) -> None: ...
    def close(self) -> None: ...


class ApplicationStore(Connected, Protocol):
    """What the business application (client.py) and the CLI do: submit, list, cancel, count."""

    def initdb(self) -> None: ...
    def submit(self, task: DownloadTaskMain, item: DownloadItem | None) -> tuple[int, int | None]: ...
    def list_tasks(self, status: int | None, limit: int) -> list[TaskSummary]: ...
    def cancel_task(self, task_id: int) -> int | None: ...
    def ranked_items(self, item_ids: Sequence[int]) -> list[ItemRef]: ...
    def count_download(
        self, item_id: int, limit: int | None, file_grace: float = 0.0
    ) -> tuple[bool, int, int] | None: ...
    def download_of(self, item_id: int) -> dict[str, Any] | None: ...
    def web_tasks(
        self,
        org_id: int | None,
        status: int | None,
        sub_type: int | None,
        limit: int,
        task_id: int | None = None,
    ) -> list[dict[str, Any]]: ...


class PollingStore(Connected, Protocol):
    """READY work of one subtype, for workers that poll the database instead of Redis."""

    def ready_items(self, sub_type: int, limit: int, cap: int = 0) -> list[int]: ...
    def splittable_tasks(
        self, sub_types: Sequence[int], lease: float, limit: int
    ) -> list[tuple[int, int]]: ...


class WorkerStore(Connected, Protocol):
    """A worker's claims and their outcomes, and splitting multi-item tasks."""

    def claim(self, item_id: int, owner: str, sub_type: int, cap: int = 0) -> Claim | None: ...
    def ranked_items(self, item_ids: Sequence[int]) -> list[ItemRef]: ...
    def record(
        self, item_id: int, token: str, outcome: Outcome, file_ttl: int, count: bool = True
    ) -> bool: ...
    def record_and_claim(
        self, done: Recording, next_id: int, owner: str, sub_type: int, cap: int = 0
    ) -> tuple[bool, Claim | None]: ...
    def add_counts(self, values: Sequence[tuple[int, str, float]]) -> None: ...
    def load_task(self, task_id: int) -> DownloadTaskMain | None: ...
    def claim_split(self, task_id: int, token: str, lease: float) -> bool: ...
    def commit_split(self, task_id: int, token: str, items: Sequence[DownloadItem]) -> SplitCommit | None: ...
    def fail_task(self, task_id: int, remark: str, token: str | None = None) -> bool: ...
    # a claim answered late is renewed and read back before it runs (worker.py)
    def heartbeat(self, item_ids: Sequence[int], task_ids: Sequence[int]) -> None: ...
    def held_states(self, item_ids: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]]: ...
    def record_file(self, item_id: int, key: str, file_ttl: int) -> None: ...
    # completion notices of its subtype, delivered between items (notices.py)
    def due_notices(self, sub_type: int, notify_for: float, limit: int) -> list[NoticeRef]: ...
    def claim_notice(self, notice: NoticeRef, hold: float) -> bool: ...
    def finish_notice(
        self, notice: NoticeRef, attempts: int, state: int, error: str | None, retry_in: float = 0
    ) -> bool: ...
    def notice_items(self, task_id: int) -> list[dict[str, Any]]: ...


class SchedulerStore(PollingStore, Protocol):
    """The scheduler's set-based passes: dispatch, roll-up, expiry, orphan recovery."""

    def has_work(self, file_ttl: int, files: bool = False) -> bool: ...
    def dispatchable_items(self, sub_types: Sequence[int], limit: int) -> list[ItemRef]: ...
    def mark_tasks_processing(self, task_ids: Iterable[int]) -> int: ...
    def unserved_subtypes(self, served: Sequence[int]) -> list[int]: ...
    def stale_ready_items(self, age: float, limit: int) -> list[ItemRef]: ...
    def open_items(self, sub_type: int, cap: int, limit: int) -> list[ItemRef]: ...
    def fail_items(self, item_ids: Iterable[int], remark: str) -> int: ...
    def cancel_items(self) -> int: ...
    def finished_tasks(self, limit: int) -> list[Tally]: ...
    def close_tasks(self, decisions: Sequence[Decision]) -> int: ...
    def expire(self, file_ttl: int, limit: int) -> tuple[int, int]: ...
    def orphans(self, lease: float, limit: int) -> list[tuple[int, str]]: ...
    def requeue(self, item_id: int, token: str, status: int, remark: str, lease: float | None) -> bool: ...
    def files_table(self) -> bool: ...
    def files_due(self, limit: int) -> list[DueFile]: ...
    def files_deleted(self, item_ids: Sequence[int]) -> int: ...
    def files_later(self, item_ids: Sequence[int], delay: float, failed: bool) -> int: ...
    def mark_cancelled_files(self) -> int: ...


class MasterStore(Connected, Protocol):
    """The master's view of the items its workers hold: heartbeats, requeues, split releases."""

    def heartbeat(self, item_ids: Sequence[int], task_ids: Sequence[int]) -> None: ...
    def held_states(self, item_ids: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]]: ...
    def requeue(self, item_id: int, token: str, status: int, remark: str, lease: float | None) -> bool: ...
    def release_split(self, task_id: int, token: str) -> bool: ...
    def write_progress(self, reports: Sequence[ProgressReport]) -> None: ...


class Store(
    ApplicationStore, WorkerStore, SchedulerStore, MasterStore, RegistrationStore, LockStore, Protocol
):
    """Everything a backend provides (what open_store returns)."""


def open_store(db: DatabaseSettings, *, timeout: float = 30.0) -> Store:
    """A store for this process; connects lazily, so it is safe to create before fork."""
    if db.kind == "mysql" and db.driver == "mysqlclient":
        from dlsupervisor.store.mysqlclient import MySQLClientStore

        return MySQLClientStore(db, timeout=timeout)
    if db.kind == "mysql":
        from dlsupervisor.store.mysql import MySQLStore

        return MySQLStore(db, timeout=timeout)
    from dlsupervisor.store.sqlite import SQLiteStore

    return SQLiteStore(db, timeout=timeout)
