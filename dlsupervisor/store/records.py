"""What the store hands back and takes: plain records, and rows shaped into them.

Shared by every SQL backend (and by callers, through dlsupervisor.store), kept
apart from the interfaces so a backend never imports the package that opens it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dlsupervisor import remarks
from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus, TaskStatus

Decision = tuple[int, int, str | None]  # (task_id, status, remark) a finished task closes with


@dataclass(frozen=True)
class ItemRef:
    item_id: int
    task_id: int
    sub_type: int  # the sub_type that serves it: the item's own type, else its task's sub_type
    top: bool = False  # its task is pinned (`top = 1`): it goes before every unpinned item
    pos: int = 1  # its place in its org's line within the subtype (1 first): the queue's order


@dataclass(frozen=True)
class SplitCommit:
    """A committed split: the ids it inserted, in its items' order, and the items it kept.

    A task that already had items (the application's own, say) keeps them and gets
    none of the split's, so a split never doubles a task's items.
    """

    ids: list[int]
    kept: int


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


class Recording(NamedTuple):
    """One outcome to record: the item, the claim token it must still carry, the outcome."""

    item_id: int
    token: str
    outcome: Outcome
    file_ttl: int


class NoticeState(enum.IntEnum):
    """dlsupervisor_notice.state."""

    PENDING = 0
    DELIVERED = 1
    NOT_APPLICABLE = 2  # the subtype has no on_task_finished (hook) or no notify_url (webhook)
    GIVEN_UP = -1  # undeliverable for notify_for


@dataclass(frozen=True)
class NoticeRef:
    """A due completion notice, as read (its attempts fence the claim)."""

    task_id: int
    kind: str  # "hook" or "webhook"
    status: int  # the task's status when it closed: DONE or FAILED
    attempts: int
    overdue: bool  # pending longer than notify_for: give it up


def notice_refs(rows: Iterable[dict[str, Any]]) -> list[NoticeRef]:
    return [
        NoticeRef(r["task_id"], r["kind"], r["status"], int(r["attempts"]), bool(r["overdue"])) for r in rows
    ]


@dataclass(frozen=True)
class ProgressReport:
    """One running item's progress as its worker's slot says, for the master to write."""

    item_id: int
    done: int
    total: int | None


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
class Progress:
    """How far a task's exports are, summed over its running and DONE items (contract.md §9)."""

    done: int
    total: int | None  # None unless every item that reported progress gave a total


@dataclass(frozen=True)
class TaskSummary:
    task: DownloadTaskMain
    counts: dict[int, int]  # item status -> how many
    progress: Progress | None = None  # None: no item reported progress


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
    return [
        ItemRef(r["id"], r["task_id"], r["sub_type"], bool(r.get("top")), int(r.get("pos") or 1))
        for r in rows
    ]


def tallies(rows: Iterable[dict[str, Any]]) -> list[Tally]:
    return [
        Tally(
            r["task_id"], int(r["total"]), int(r["done"]), int(r["failed"]), int(r["expired"]), r["failure"]
        )
        for r in rows
    ]


def summaries(
    tasks: list[dict[str, Any]], counts: Iterable[dict[str, Any]], progress: Iterable[dict[str, Any]] = ()
) -> list[TaskSummary]:
    """Tasks with their items counted by status, from `task_id, status, n` rows, and their
    progress from `task_id, done, total, known, n` rows."""
    by_task: dict[int, dict[int, int]] = {row["id"]: {} for row in tasks}
    for row in counts:
        by_task[row["task_id"]][row["status"]] = int(row["n"])
    sums = {row["task_id"]: progress_of(row) for row in progress}
    return [TaskSummary(DownloadTaskMain(row), by_task[row["id"]], sums.get(row["id"])) for row in tasks]


def progress_of(row: dict[str, Any]) -> Progress:
    """A task's progress row: the total counts only if every reporting item gave one."""
    known = int(row["known"]) == int(row["n"])
    return Progress(int(row["done"] or 0), int(row["total"]) if known and row["total"] is not None else None)


def maybe_int(value: Any) -> int | None:
    return None if value is None else int(value)


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
