"""The master's database calls: outcomes written behind, heartbeats, and checks of held items.

None of them may stall the loop, nor end it: a call that finds the database
unavailable, or that the database refuses (read-only, denied), is kept and
retried on a later tick (write-behind) while the connection backs off.
Recording what a child held when it died or was killed is `settle`, the one
place that turns a child's work and its ending into a store call.  What the
database answered feeds the fence (fence.py): a master cut off from it stops
its own exports before another supervisor may take them over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from dlsupervisor import fence, remarks
from dlsupervisor.child import Child
from dlsupervisor.config import DatabaseSettings
from dlsupervisor.fence import Fence
from dlsupervisor.model import ItemStatus
from dlsupervisor.retry import UNAVAILABLE, Outage, error_kind
from dlsupervisor.slots import SlotState
from dlsupervisor.store import Outcome, ProgressReport, Store, open_store

log = logging.getLogger("dlsupervisor.master")

DB_TIMEOUT = 2.0  # the master's database calls must not stall its loop for long (lease/8 if less)
RETRY_AFTER = 1.0  # seconds the master leaves the database alone after it was unavailable (ditto)
MAX_ERROR_BACKOFF = 5.0  # the longest wait between calls the database refuses (a heartbeat period)
CANCELLED = Outcome(int(ItemStatus.CANCELLED), remarks.CANCELLED)


@dataclass(frozen=True)
class Work:
    """An item being exported or a task being split, with the token its claim carries."""

    kind: SlotState  # ITEM or SPLIT
    work_id: int
    token: str

    @classmethod
    def held_by(cls, child: Child, host: str) -> Work | None:
        """What the child held (as when it was killed, if it was), while its pid is known."""
        view = child.held()
        if view is None:
            return None
        if view.state == SlotState.SPLIT:
            return cls(view.state, view.work_id, remarks.split_token(host, child.pid))
        if view.state == SlotState.NOTICE:
            return cls(view.state, view.work_id, "")
        return cls(view.state, view.work_id, remarks.claim_token(host, child.pid, view.attempt))


class EndingKind(Enum):
    FAILED = "failed"
    REQUEUED = "requeued"  # back to READY (an item) or released (a split)
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Ending:
    """How a piece of work ended, as the master records it."""

    kind: EndingKind
    remark: str = ""  # FAILED: the remark; REQUEUED: the reason

    @classmethod
    def failed(cls, remark: str) -> Ending:
        return cls(EndingKind.FAILED, remark)

    @classmethod
    def requeued(cls, reason: str) -> Ending:
        return cls(EndingKind.REQUEUED, reason)


class Refusals:
    """Errors that are not outages (read-only, denied, ...), per kind of call: each error
    kind logged once, the refused call retried with a doubling backoff (the others go on)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.failing: dict[str, tuple[float, float]] = {}  # call -> (retry at, delay)
        self.logged: set[str] = set()
        self.since: float | None = None

    def allowed(self, op: str) -> bool:
        return self.clock() >= self.failing.get(op, (0.0, 0.0))[0]

    def failed(self, op: str, exc: Exception) -> None:
        kind = error_kind(exc)
        delay = min(MAX_ERROR_BACKOFF, self.failing[op][1] * 2 if op in self.failing else RETRY_AFTER)
        self.failing[op] = (self.clock() + delay, delay)
        if kind not in self.logged:
            self.logged.add(kind)
            self.since = self.since or self.clock()
            log.error("database refused a call (%s): %s; retrying with backoff", kind, exc, exc_info=True)
        else:
            log.debug("database refused a call again (%s: %s); retry in %gs", kind, op, delay)

    def succeeded(self, op: str) -> None:
        if self.failing.pop(op, None) is None or self.failing:
            return
        kinds = ", ".join(sorted(self.logged))
        log.warning(
            "recovered: database calls succeed again after %.1fs (%s)", self.clock() - self.since, kinds
        )
        self.logged, self.since = set(), None


class MasterDatabase:
    """The master's one connection, its outage state and its unwritten outcomes."""

    def __init__(
        self, settings: DatabaseSettings, clock: Callable[[], float] = time.monotonic, lease: float = 30.0
    ) -> None:
        """`lease` (the scheduler's; the master updates it on reload) bounds every call's
        timeout and retry, so a blackholed database cannot stall the loop past the fence."""
        self.settings = settings
        self.clock = clock
        self.lease = lease
        self.fence = Fence()
        self.store: Store | None = None
        self.outage = Outage(log, clock)
        self.refusals = Refusals(clock)
        self.retry_at = 0.0
        self.pending: list[tuple[str, Callable[[Store], Any]]] = []

    def open(self) -> None:
        """Import the backend now (so children inherit it); it connects on first use."""
        self.store = open_store(self.settings, timeout=fence.db_timeout(self.lease, DB_TIMEOUT))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def call(self, call: Callable[[Store], Any], op: str) -> tuple[bool, Any]:
        """(True, result), or (False, None) while the database is unavailable, or refuses
        this kind of call (`op`), or the call is backing off."""
        if self.clock() < self.retry_at or not self.refusals.allowed(op):
            return False, None
        if self.store is None:
            self.open()
        try:
            result = call(self.store)
        except UNAVAILABLE as exc:
            self.outage.down(exc)
            self.retry_at = self.clock() + fence.db_timeout(self.lease, RETRY_AFTER)
            return False, None
        except Exception as exc:  # a store call's boundary: never the master's end, nor an export's
            self.refusals.failed(op, exc)
            return False, None
        self.outage.up()
        self.refusals.succeeded(op)
        if op in ("heartbeat", "write"):  # what renews or settles held work: the fence may lift
            self.lifted()
        return True, result

    def lifted(self) -> None:
        since = self.fence.lift(self.clock())
        if since is not None:
            log.warning("fence: lifted; the database answers again (%.1fs after fencing)", since)

    def write(self, what: str, call: Callable[[Store], Any]) -> None:
        """An outcome the master records: now if it can, else on a later tick."""
        done, applied = self.call(call, "write")
        if done:
            level = logging.WARNING if applied else logging.INFO
            log.log(level, "%s%s", what, "" if applied else " (already settled)")
        else:
            self.pending.append((what, call))

    def flush(self) -> None:
        """Retry what could not be written; while down, ping (at most once a second)."""
        if self.outage.since is not None:
            self.call(lambda s: s.ping(), "ping")
        pending, self.pending = self.pending, []
        for what, call in pending:
            self.write(what, call)

    def settle(self, work: Work, ending: Ending) -> None:
        """Record how a child's work ended: the one place the master writes an outcome."""
        wid, token = work.work_id, work.token
        if work.kind == SlotState.NOTICE:  # nothing to record: its claim runs out and it is retried
            log.warning("task %d: notice interrupted (%s); it will be retried", wid, ending.kind.value)
        elif work.kind == SlotState.SPLIT:
            if ending.kind is EndingKind.FAILED:
                remark = f"{remarks.SPLIT_FAILED} {ending.remark}"
                self.write(f"task {wid}: {remark}", lambda s: s.fail_task(wid, remark, token))
            else:
                self.write(f"task {wid}: split released", lambda s: s.release_split(wid, token))
        elif ending.kind is EndingKind.REQUEUED:
            status, remark = remarks.requeue_outcome(token, ending.remark)
            self.write(f"item {wid}: {remark}", lambda s: s.requeue(wid, token, status, remark, None))
        elif ending.kind is EndingKind.CANCELLED:
            self.write(f"item {wid}: cancelled", lambda s: s.record(wid, token, CANCELLED, 0))
        else:
            outcome = Outcome(int(ItemStatus.FAILED), ending.remark)
            self.write(f"item {wid}: failed: {ending.remark}", lambda s: s.record(wid, token, outcome, 0))

    def heartbeat(self, items: Sequence[int], tasks: Sequence[int]) -> bool:
        """Renew the held work's leases; False if the database did not take it.  An answered
        heartbeat moves the fence: every lease it renewed runs from when it was sent."""
        if not (items or tasks):
            return True
        sent = self.clock()
        done, _ = self.call(lambda s: s.heartbeat(items, tasks), "heartbeat")
        if done:
            self.fence.answered(sent)
        return done

    def write_progress(self, reports: list[ProgressReport]) -> bool:
        """Progress is not an outcome: not kept for later when the database does not take it."""
        done, _ = self.call(lambda s: s.write_progress(reports), "progress")
        return done

    def held_states(self, items: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]] | None:
        """Each held item's (status, remark, task status); None while unavailable."""
        ok, states = self.call(lambda s: s.held_states(list(items)), "held_states")
        return states if ok else None
