"""The durable counters behind /metrics (contract.md §8): their names, and what one outcome adds.

Rows of dlsupervisor_counter (sub_type, name, value), read by the web child at scrape
time: they survive any process's restart, with no per-process metric files.  The
master's and the scheduler's outcomes are counted by the statement after the one that
records them (store/sql.py); a worker's are summed in its `CountBuffer` and added at most
once a second and whenever it is idle (worker.py), so a busy worker's record stays one
statement: a SIGKILL loses at most its last second of counts, never an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dlsupervisor import remarks
from dlsupervisor.model import ItemStatus

OUTCOMES = ("done", "failed", "timeout", "worker_died", "cancelled", "requeued", "expired")
BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)  # seconds
DURATION_SUM = "duration:sum"
DURATION_COUNT = "duration:count"


def outcome_name(status: int, remark: str | None) -> str | None:
    """The `outcome` label of a recorded item status (None: not an outcome)."""
    if status == ItemStatus.DONE:
        return "done"
    if status == ItemStatus.CANCELLED:
        return "cancelled"
    if status == ItemStatus.READY:
        return "requeued"
    if status == ItemStatus.EXPIRED:
        return "expired"
    if status == ItemStatus.FAILED:
        text = remark or ""
        if text.startswith(remarks.TIMEOUT):
            return "timeout"
        if text.startswith(remarks.WORKER_DIED):
            return "worker_died"
        return "failed"
    return None


def bucket_name(bound: float) -> str:
    return f"duration:le:{bound:g}"


def increments(outcome: str | None, seconds: float | None) -> list[tuple[str, float]]:
    """(counter name, amount) for one outcome and, when known, its export time."""
    added = [(f"items:{outcome}", 1.0)] if outcome else []
    if seconds is not None:
        added += [(DURATION_COUNT, 1.0), (DURATION_SUM, float(seconds))]
        added += [(name, 1.0) for bound, name in _BUCKET_NAMES if seconds <= bound]
    return added


_BUCKET_NAMES = tuple((bound, bucket_name(bound)) for bound in BUCKETS)  # once: a worker adds them per item


@dataclass
class CountBuffer:
    """Outcomes counted in memory until the next flush: (sub_type, name) -> amount."""

    sums: dict[tuple[int, str], float] = field(default_factory=dict)

    def add(self, sub_type: int, outcome: str | None, seconds: float | None) -> None:
        for name, amount in increments(outcome, seconds):
            self.sums[sub_type, name] = self.sums.get((sub_type, name), 0.0) + amount

    def rows(self) -> list[tuple[int, str, float]]:
        return [(sub_type, name, amount) for (sub_type, name), amount in self.sums.items()]
