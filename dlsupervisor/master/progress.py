"""Export progress, child → slot → master → database (contract.md §9).

An export reports progress into its worker's slot (shared memory, no I/O in the
hot path).  The master gathers what changed from the slots it reads and writes it
in one batch at most once every PROGRESS_EVERY seconds, so an item's row is
written at most once a second however often its export reports.  Progress is
not an outcome: a batch the database does not take is dropped, and the next
one carries the latest values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dlsupervisor.child import Child
from dlsupervisor.slots import SlotState
from dlsupervisor.store import ProgressReport

PROGRESS_EVERY = 1.0  # seconds between the master's progress writes (so per item too)


def reports(children: Iterable[Child]) -> dict[int, ProgressReport]:
    """item id -> what its export last reported, for every child exporting one."""
    found = {}
    for child in children:
        view = child.view
        if child.busy and view is not None and view.state == SlotState.ITEM and view.progress is not None:
            done, total = view.progress
            found[view.work_id] = ProgressReport(view.work_id, done, total)
    return found


class ProgressWriter:
    """What was last written per item, and when the next write may go."""

    def __init__(self) -> None:
        self.written: dict[int, ProgressReport] = {}
        self.next_write = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_write

    def step(
        self, children: Iterable[Child], now: float, write: Callable[[list[ProgressReport]], bool]
    ) -> int:
        """Write what changed since the last write, if one is due; the number of rows sent."""
        if not self.due(now):
            return 0
        current = reports(children)
        changed = [r for item_id, r in current.items() if self.written.get(item_id) != r]
        self.written = {i: r for i, r in self.written.items() if i in current}  # finished: forget
        if not changed:
            return 0
        self.next_write = now + PROGRESS_EVERY
        if write(changed):
            self.written.update((r.item_id, r) for r in changed)
        return len(changed)
