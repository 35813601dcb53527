"""When a master must stop its own exports because the database stopped answering.

Any supervisor may take an item over once its heartbeat in the database is
`lease` old (contract.md §4).  A master cut off from the database cannot renew
the heartbeats, so it stops its exports itself once no heartbeat has been answered
for half the lease: the other half leaves room for its loop to notice (one database
call, bounded by `db_timeout`) and for the kill to land (`kill_grace`), before
anyone else may start the same item.  Pure arithmetic on the master's clock.
"""

from __future__ import annotations

import math

FENCED = "database unreachable"  # the kill reason, and the requeue remark's reason


def db_timeout(lease: float, ceiling: float) -> float:
    """How long one of the master's database calls may block its loop, and how long it
    waits after a failed one: short leases still leave room for several tries first."""
    return min(ceiling, lease / 8)


def kill_grace(lease: float, grace: float) -> float:
    """Seconds between a fenced export's SIGTERM and SIGKILL: short enough to beat the lease."""
    return min(grace, lease / 4)


def fence_at(last_ok: float, started: float, lease: float) -> float:
    """When work begun at `started` must stop unless a heartbeat is answered first.

    Its lease runs from the later of its claim (moments before `started`) and the
    sending of the last heartbeat the database answered.
    """
    return max(last_ok, started) + lease / 2


def should_fence(last_ok: float, started: float, lease: float, now: float) -> bool:
    return now >= fence_at(last_ok, started, lease)


class Fence:
    """The master's memory of answered heartbeats, and of whether it is fencing."""

    def __init__(self) -> None:
        self.last_ok = -math.inf  # when the last heartbeat the database answered was sent
        self.fenced_at: float | None = None  # when it first stopped exports, until the database answers

    def answered(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` came back: every lease it covered runs from then."""
        self.last_ok = max(self.last_ok, sent_at)

    def due(self, started: float, lease: float, now: float) -> bool:
        return should_fence(self.last_ok, started, lease, now)

    def deadline(self, started: float, lease: float) -> float:
        return fence_at(self.last_ok, started, lease)

    def fenced(self, now: float) -> None:
        if self.fenced_at is None:
            self.fenced_at = now

    def lift(self, now: float) -> float | None:
        """The database answered: seconds since the fence began, or None if there was none."""
        if self.fenced_at is None:
            return None
        since, self.fenced_at = now - self.fenced_at, None
        return since
