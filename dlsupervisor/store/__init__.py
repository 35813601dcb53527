"""The store: every SQL statement lives behind this interface (DESIGN "Backends").

Each method is one short statement (or one transaction), parameterised, and
every transition is conditional on the state it expects (DESIGN invariant 2),
returning whether it applied.  Connection loss surfaces as StoreUnavailable;
callers decide whether to retry (workers, scheduler) or to try again next
tick (the master, whose loop must never block).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dlsupervisor import remarks
from dlsupervisor.config import DatabaseSettings
from dlsupervisor.model import DownloadItem, DownloadTaskMain


@dataclass(frozen=True)
class Registration:
    """A subtype served by live workers: how the scheduler routes its tasks."""

    name: str
    type: int
    sub_type: int
    queue_key: str
    multi: bool


@dataclass(frozen=True)
class ItemRef:
    item_id: int
    task_id: int
    route: int  # the sub_type that serves it: the item's own type, else its task's sub_type


@dataclass(frozen=True)
class Claim:
    """An item this worker now holds: the row as claimed, and the token that fences its writes."""

    item: DownloadItem
    token: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """What one attempt at an item ended as (outcomes.py decides, the store records)."""

    status: int
    remark: str | None = None
    url: str | None = None
    md5: str | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class Tally:
    """A PROCESSING task whose items are all terminal, counted by status."""

    task_id: int
    total: int
    done: int
    failed: int
    expired: int
    first_failure: str | None  # the remark of its first failed item


@dataclass(frozen=True)
class TaskSummary:
    task: DownloadTaskMain
    counts: dict[int, int]  # item status -> how many


# -- what both stores share: the columns they insert, and rows shaped into results ------------

TASK_INSERT_COLUMNS = tuple(
    name
    for name in DownloadTaskMain.FIELDS
    if name not in ("id", "remark", "created_time", "last_updated_time")
)
ITEM_INSERT_COLUMNS = ("task_id", "org_id", "type", "file_name", "target_id", "expire_time", "data")


def claim_of(row: dict[str, Any] | None, owner: str) -> Claim | None:
    """The claim in a row read back after claiming, if `owner` holds it (also after a retried
    claim whose first try reached the database but whose answer was lost)."""
    token = (row or {}).get("remark") or ""
    if row is None or row["status"] != 1 or not token.startswith(f"{remarks.RUNNING_ON}{owner} attempt "):
        return None
    return Claim(DownloadItem(row), token, remarks.attempt_of(token))


def item_refs(rows: Iterable[dict[str, Any]]) -> list[ItemRef]:
    return [ItemRef(r["id"], r["task_id"], r["route"]) for r in rows]


def registrations_of(rows: Iterable[dict[str, Any]]) -> list[Registration]:
    return [Registration(r["name"], r["type"], r["sub_type"], r["queue_key"], bool(r["multi"])) for r in rows]


def tallies(rows: Iterable[dict[str, Any]]) -> list[Tally]:
    return [
        Tally(
            r["task_id"], int(r["total"]), int(r["done"]), int(r["failed"]), int(r["expired"]), r["failure"]
        )
        for r in rows
    ]


def summaries(tasks: list[dict[str, Any]], counts: Iterable[dict[str, Any]]) -> list[TaskSummary]:
    """Tasks with their items counted by status, from `task_id, status, n` rows."""
    by_task: dict[int, dict[int, int]] = {row["id"]: {} for row in tasks}
    for row in counts:
        by_task[row["task_id"]][row["status"]] = int(row["n"])
    return [TaskSummary(DownloadTaskMain(row), by_task[row["id"]]) for row in tasks]


def case_args(decisions: Sequence[tuple[int, int, str | None]]) -> list[Any]:
    """Parameters for `status = CASE id WHEN ? THEN ? ... END, remark = CASE id ... END`."""
    args: list[Any] = []
    for task_id, status, _ in decisions:
        args += [task_id, status]
    for task_id, _, remark in decisions:
        args += [task_id, remark]
    return args


class Store(Protocol):
    # -- schema and the application's side -------------------------------------------
    def initdb(self) -> None: ...
    def submit(self, task: DownloadTaskMain, item: DownloadItem | None) -> tuple[int, int | None]: ...
    def list_tasks(self, status: int | None, limit: int) -> list[TaskSummary]: ...
    def cancel_task(self, task_id: int) -> int | None: ...
    def count_download(self, item_id: int, limit: int | None) -> tuple[bool, int, int] | None: ...

    # -- worker ----------------------------------------------------------------------
    def claim(self, item_id: int, owner: str, route: int) -> Claim | None: ...
    def record(self, item_id: int, token: str, outcome: Outcome, file_ttl: int) -> bool: ...
    def load_task(self, task_id: int) -> DownloadTaskMain | None: ...
    def claim_split(self, task_id: int, token: str, lease: float) -> bool: ...
    def commit_split(self, task_id: int, token: str, items: Sequence[DownloadItem]) -> list[int] | None: ...
    def fail_task(self, task_id: int, remark: str, token: str | None = None) -> bool: ...
    def ready_items(self, sub_type: int, limit: int) -> list[int]: ...

    # -- registry (when there is no Redis) ---------------------------------------------
    def register(self, reg: Registration) -> None: ...
    def registrations(self, max_age: float) -> list[Registration]: ...

    # -- scheduler -------------------------------------------------------------------
    def has_work(self, file_ttl: int) -> bool: ...
    def dispatchable_items(self, sub_types: Sequence[int], limit: int) -> list[ItemRef]: ...
    def mark_tasks_processing(self, task_ids: Iterable[int]) -> int: ...
    def splittable_tasks(
        self, sub_types: Sequence[int], lease: float, limit: int
    ) -> list[tuple[int, int]]: ...
    def unserved_subtypes(self, served: Sequence[int]) -> list[int]: ...
    def stale_ready_items(self, age: float, limit: int) -> list[ItemRef]: ...
    def fail_items(self, item_ids: Iterable[int], remark: str) -> int: ...
    def cancel_items(self) -> int: ...
    def finished_tasks(self, limit: int) -> list[Tally]: ...
    def close_tasks(self, decisions: Sequence[tuple[int, int, str | None]]) -> int: ...
    def expire(self, file_ttl: int, limit: int) -> tuple[int, int]: ...
    def orphans(self, lease: float, limit: int) -> list[tuple[int, str]]: ...
    def requeue(self, item_id: int, token: str, status: int, remark: str, lease: float | None) -> bool: ...

    # -- master ----------------------------------------------------------------------
    def heartbeat(self, item_ids: Sequence[int], task_ids: Sequence[int]) -> None: ...
    def held_states(self, item_ids: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]]: ...
    def release_split(self, task_id: int, token: str) -> bool: ...

    def lead(self, name: str, ttl: float) -> bool: ...
    def unlead(self, name: str) -> None: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...


def split_closures(
    decisions: Sequence[tuple[int, int, str | None]],
) -> tuple[dict[int, list[int]], list[tuple[int, int, str | None]]]:
    """Task closures as (status -> ids of those closing with no remark, the rest).

    Most tasks close DONE with no remark: one `id IN (...)` update per status
    takes them, and only the others need a CASE (whose cost grows with its length
    on every row it touches).
    """
    plain: dict[int, list[int]] = {}
    remarked = []
    for task_id, status, remark in decisions:
        if remark is None:
            plain.setdefault(status, []).append(task_id)
        else:
            remarked.append((task_id, status, remark))
    return plain, remarked


def open_store(db: DatabaseSettings, *, timeout: float = 30.0) -> Store:
    """A store for this process; connects lazily, so it is safe to create before fork."""
    if db.kind == "mysql":
        from dlsupervisor.store.mysql import MySQLStore

        return MySQLStore(db, timeout=timeout)
    from dlsupervisor.store.sqlite import SQLiteStore

    return SQLiteStore(db, timeout=timeout)
