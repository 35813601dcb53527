"""The status file's content, built from the children: monotonic times become wall-clock ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dlsupervisor.child import Child, ChildState
from dlsupervisor.slots import SlotState
from dlsupervisor.statusfile import ChildStatus, MasterStatus, Status

STATUS_EVERY = 5.0  # seconds between status file writes when nothing changed


def signature(children: Iterable[Child], *master_state: Any) -> tuple[Any, ...]:
    """What, when it changes, makes the master write the file at once."""
    rows = tuple(
        (
            child.name,
            child.pid,
            child.status_state(),
            child.view.work_id if child.busy else None,
            child.view.progress if child.busy else None,
            child.restarts,
            child.next_start_at if child.state is ChildState.BACKOFF else None,
        )
        for child in children
    )
    return (*master_state, rows)


def child_status(child: Child, now: float, wall: float) -> ChildStatus:
    view, busy = child.view, child.busy
    progress = view.progress if busy and view is not None else None
    backoff = child.state is ChildState.BACKOFF
    return ChildStatus(
        name=child.name,
        role=child.role,
        subtype=child.subtype,
        number=child.number,
        pid=child.pid,
        state=child.status_state(),
        item=view.work_id if busy and view.state == SlotState.ITEM else None,
        split=view.work_id if busy and view.state == SlotState.SPLIT else None,
        since=wall - (now - view.started) if busy else None,
        restarts=child.restarts,
        items_done=view.done if view else 0,
        backoff_until=wall + child.next_start_at - now if backoff else None,
        progress_done=progress[0] if progress else None,
        progress_total=progress[1] if progress else None,
    )


def build(master: MasterStatus, children: Iterable[Child], now: float, wall: float) -> Status:
    return Status(master, tuple(child_status(child, now, wall) for child in children), wall)
