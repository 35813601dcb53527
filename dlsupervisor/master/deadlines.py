"""When a child's work runs out of time, and which children are due a kill now.

Pure decisions over the children and the settings: the master acts on them.
"""

from __future__ import annotations

from dlsupervisor.child import Child, ChildState, KillReason
from dlsupervisor.config import Settings

BOOT_TICK = 0.02  # while a child boots: READY=1 and the status follow its boot closely


def timeout_deadline(settings: Settings, child: Child) -> float | None:
    """When the child's current work runs out of time (None: no limit)."""
    sub = settings.subtype(child.subtype) if child.subtype else None
    limit = sub.timeout if sub else 0
    return child.view.started + limit if limit else None


def overdue(settings: Settings, child: Child, now: float, drain_deadline: float | None) -> KillReason | None:
    """Why a live child not being killed must be killed now, if it must."""
    if drain_deadline is not None and now >= drain_deadline:
        return KillReason.STOP
    if child.busy:
        deadline = timeout_deadline(settings, child)
        return KillReason.TIMEOUT if deadline is not None and now >= deadline else None
    if child.state is not ChildState.STOPPING:
        silent = now - (child.view.beat if child.view else child.spawned_at)
        if silent > settings.supervisor.heartbeat_timeout:
            return KillReason.HUNG
    return None


def next_due(settings: Settings, child: Child, now: float) -> float | None:
    """The next moment this child needs the loop: its start, boot, kill or timeout."""
    if child.state is ChildState.STARTING:
        return now + BOOT_TICK
    if child.state is ChildState.BACKOFF:
        return child.next_start_at
    if child.state is ChildState.KILLING:
        return None if child.hard_killed else child.kill_deadline
    if child.busy:
        return timeout_deadline(settings, child)
    return None
