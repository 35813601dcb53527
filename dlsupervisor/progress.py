"""How progress reads to people (contract.md §9): `45%` with a total, `1,200 rows` without.

Progress is shown only while a task is active, or as complete once it is DONE: a
failed, cancelled or expired task shows none (its last report would mislead).
"""

from __future__ import annotations

from typing import Any

from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.store import Progress

NONE = "-"


def text(done: int, total: int | None) -> str:
    """`45%` when the total is known (never past 100%), else `1,200 rows`."""
    if total is None:
        return f"{done:,} rows"
    if total <= 0:
        return "100%"
    return f"{min(100, done * 100 // total)}%"


def task_text(status: int, progress: Progress | None) -> str:
    if progress is None or status not in (TaskStatus.READY, TaskStatus.PROCESSING, TaskStatus.DONE):
        return NONE
    if status == TaskStatus.DONE and progress.total is not None:
        return text(progress.total, progress.total)
    return text(progress.done, progress.total)


def task_json(status: int, progress: Progress | None) -> dict[str, Any] | None:
    """`tasks --json`: {"done", "total", "text"}, or None where `tasks` shows `-`."""
    shown = task_text(status, progress)
    if progress is None or shown == NONE:
        return None
    done = progress.total if status == TaskStatus.DONE and progress.total is not None else progress.done
    return {"done": done, "total": progress.total, "text": shown}


def item_json(status: int, progress: Progress | None) -> dict[str, Any] | None:
    """/api's per item, like task_json: a running item's report, a DONE one complete; none for
    a READY (requeued: its row is its last attempt's), failed, cancelled or expired item."""
    if status not in (ItemStatus.PROCESSING, ItemStatus.DONE):
        return None
    return task_json(status, progress)  # PROCESSING and DONE have the same number in both
