"""What the store hands back and takes: plain records, and rows shaped into them.

Shared by every SQL backend (and by callers, through dlsupervisor.store), kept
apart from the interfaces so a backend never imports the package that opens it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dlsupervisor import remarks
from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus, TaskStatus

Decision = tuple[int, int, str | None]  # (task_id, status, remark) a finished task closes with


@dataclass(frozen=True)
class ItemRef:
    item_id: int
    task_id: int
    sub_type: int  # the sub_type that serves it: the item's own type, else its task's sub_type


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
    seconds: float | None = None  # how long the export ran (the worker's; the metrics' histogram)


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
class DueFile:
    """A stored file due for deletion, with what decides it (the store's current statuses)."""

    item_id: int
    key: str
    attempts: int
    item_status: int | None  # None: the item row is gone
    task_status: int | None

    @property
    def deletable(self) -> bool:
        """EXPIRED, CANCELLED or FAILED (a file its item never got), or the task CANCELLED."""
        gone = (ItemStatus.EXPIRED, ItemStatus.CANCELLED, ItemStatus.FAILED)
        cancelled = self.task_status == TaskStatus.CANCELLED
        return self.item_status is None or self.item_status in gone or cancelled


@dataclass(frozen=True)
class TaskSummary:
    task: DownloadTaskMain
    counts: dict[int, int]  # item status -> how many


TASK_INSERT_COLUMNS = tuple(
    name
    for name in DownloadTaskMain.FIELDS
    if name not in ("id", "remark", "created_time", "last_updated_time")
)
ITEM_INSERT_COLUMNS = ("task_id", "org_id", "type", "file_name", "target_id", "expire_time", "data")


def claim_of(row: dict[str, Any] | None, owner: str) -> Claim | None:
    """The claim in a row read back after claiming, if `owner` holds it (also after a retried
    claim whose first try reached the database but whose answer was lost)."""
    if row is None or row["status"] != ItemStatus.PROCESSING or not remarks.held_by(row["remark"], owner):
        return None
    return Claim(DownloadItem(row), row["remark"], remarks.attempt_of(row["remark"]))


def item_refs(rows: Iterable[dict[str, Any]]) -> list[ItemRef]:
    return [ItemRef(r["id"], r["task_id"], r["sub_type"]) for r in rows]


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


def split_closures(decisions: Sequence[Decision]) -> tuple[dict[int, list[int]], list[Decision]]:
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
