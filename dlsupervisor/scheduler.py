"""The scheduler's loop: dispatch · cancel · roll-up · expiry · re-dispatch · orphan recovery.

One pass is `tick()`; each step is one or two set-based store calls over
active rows only (architecture.md, invariant 7), and an idle pass is a single read that
finds no active row and no file due to expire.  Only the elected scheduler works
(invariant 6); the others keep trying to become it.  Subtypes are learnt from
the registrations of live workers, so the scheduler never imports user code.
No database error ends it (issue 11): an outage ends the pass, a refused
statement backs the passes off; a leader the database stopped answering for half
the lease lets the leadership go, so another supervisor's scheduler can recover
its items (architecture.md, invariant 5), and stands again once it answers.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dlsupervisor import outcomes, queue, remarks
from dlsupervisor.config import Settings
from dlsupervisor.election import Election
from dlsupervisor.errors import EX_ORPHANED, EX_RECYCLE, QueueUnavailable, StoreUnavailable
from dlsupervisor.filesweep import FileSweeper
from dlsupervisor.model import TaskStatus
from dlsupervisor.queue import Queue
from dlsupervisor.registry import REGISTRATION_MAX_AGE, Registration, Registry, open_registry
from dlsupervisor.retry import Outage, Refusals, error_kind
from dlsupervisor.store import ItemRef, SchedulerStore

log = logging.getLogger("dlsupervisor.scheduler")

NUDGE_GAP = 0.05  # a worker's nudge brings the next pass forward, never closer than this
AWAIT_BLOCK = 1.0  # the longest one wait for a nudge blocks (well inside the client's timeout)


@dataclass
class PassReport:
    """What one pass changed; tests and the debug log read it."""

    dispatched: int = 0
    split_jobs: int = 0
    unroutable: int = 0
    cancelled: int = 0
    closed: list[tuple[int, int, str | None]] = field(default_factory=list)
    expired: tuple[int, int] = (0, 0)
    resent: int = 0
    requeued: int = 0
    files_deleted: int = 0
    more: bool = False  # a step stopped at batch_size: the next pass follows at once


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        store: SchedulerStore,
        work_queue: Queue,
        election: Election,
        *,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`registry` defaults to the one beside the queue (open_store's stores can hold it)."""
        self.settings = settings
        self.conf = settings.scheduler
        self.store = store
        self.queue = work_queue
        self.registry = registry or open_registry(settings, store, work_queue)
        self.election = election
        self.leading = False
        self._warned_unserved: set[int] = set()
        self._outage = Outage(log)
        self.clock = clock
        self._refusals = Refusals(log, "the scheduler's pass", clock)
        self._retry_at = 0.0  # a refused pass: the next one waits until then
        self._answered_at = clock()  # when the database last answered this leader
        self._stood_down = False  # it let the leadership go: the database stopped answering
        self.files = FileSweeper(settings.storage, store, self.conf.batch_size)
        self._files_table: bool | None = None  # probed once: None until then

    # -- the loop ----------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], parent_alive: Callable[[], bool] = lambda: True) -> int:
        log.info("scheduler: started (poll every %.2fs)", self.conf.poll_interval)
        try:
            while not should_stop():
                if not parent_alive():
                    log.warning("scheduler: master is gone; exiting")
                    return EX_ORPHANED
                started = time.monotonic()
                report = self.safe_tick()
                if report is None or not report.more:  # else rows wait for the next pass: now
                    self.pause(started)
        finally:
            self.resign()
        return EX_RECYCLE

    def pause(self, started: float) -> None:
        """Until poll_interval after the pass that began at `started`, or the nudge of a
        worker that ran out of queued work (architecture.md, "Processes"): READY rows
        an application inserted meanwhile then wait for no poll while workers idle.  Only
        the leader listens (a nudge is for one pass), and never closer than NUDGE_GAP."""
        deadline = started + self.conf.poll_interval
        while (remaining := deadline - time.monotonic()) > 0:
            if not self.leading:
                time.sleep(remaining)
                return
            try:
                if self.queue.await_nudge(min(remaining, AWAIT_BLOCK)):  # idle: one wake-up a pass
                    time.sleep(max(0.0, min(started + NUDGE_GAP, deadline) - time.monotonic()))
                    return
            except QueueUnavailable:
                time.sleep(max(0.0, deadline - time.monotonic()))
                return

    def resign(self) -> None:
        """Let the leadership go, if held.  A connection a stop signal broke mid-call cannot
        release it: then it goes with the connection (or the key's TTL), and the stop goes on."""
        if not self.leading:
            return
        self.leading = False
        try:
            self.election.release()
        except Exception as exc:  # never turns a stop into a crash
            log.info("scheduler: leadership left to lapse (%s)", error_kind(exc))

    def safe_tick(self) -> PassReport | None:
        """One pass; an outage ends it, a refused statement backs the passes off (each logged
        once per kind); a later pass tries again."""
        started = self.clock()
        if started < self._retry_at or (self._stood_down and not self._database_answers()):
            return None
        try:
            report = self.tick()
        except StoreUnavailable as exc:
            self._outage.down(exc)
            self._database_failed()
            return None
        except QueueUnavailable as exc:
            self._outage.down(exc)
            return None
        except Exception as exc:  # the pass's boundary: a refused statement never ends the process
            self._retry_at = self.clock() + self._refusals.failed(exc)
            self._answered_at = started  # refused is an answer: the database is there
            return None
        self._outage.up()
        self._refusals.succeeded()
        if self.leading:
            self._answered_at = started
        return report

    def _database_failed(self) -> None:
        """A leader the database has not answered for half the lease stands down: past the
        lease another supervisor's scheduler must be able to recover this one's items."""
        silent = self.clock() - self._answered_at
        if self.leading and silent >= self.conf.lease / 2:
            log.warning(
                "scheduler: no database answer for %.1fs (the lease is %gs); "
                "leadership released until it answers",
                silent,
                self.conf.lease,
            )
            self.resign()
            self._stood_down = True

    def _database_answers(self) -> bool:
        """Stood down: stand for election again once the database answers."""
        try:
            self.store.ping()
        except Exception as exc:  # an outage, mostly; either way not yet
            self._outage.down(exc)
            return False
        self._stood_down = False
        log.info("scheduler: the database answers again; standing for election")
        return True

    def tick(self) -> PassReport | None:
        if not self._lead():
            return None
        if not self.store.has_work(self.conf.file_ttl, files=self.deleting()):
            return PassReport()  # nothing active, nothing to expire: every step would find nothing
        routes = {reg.sub_type: reg for reg in self.registry.registrations(REGISTRATION_MAX_AGE)}
        report = PassReport()
        report.dispatched, report.unroutable = self.dispatch(routes)
        report.split_jobs = self.dispatch_splits(routes)
        self.warn_unserved(routes)
        report.cancelled = self.cancel()
        report.closed = self.roll_up()
        report.expired = self.expire()
        report.resent = self.redispatch(routes)
        report.requeued = self.recover_orphans()
        if self.deleting():
            report.files_deleted = self.files.step()
        # Only steps whose rows leave the set they were read from: re-sent and expired rows
        # may be read again, and would make a loop of passes.
        full = max(report.dispatched + report.unroutable, report.split_jobs, len(report.closed))
        report.more = full >= self.conf.batch_size
        return report

    def deleting(self) -> bool:
        """[storage] delete_expired, and the table that tracks stored files exists."""
        if not self.settings.storage.delete_expired:
            return False
        if self._files_table is None:
            self._files_table = self.store.files_table()
            if not self._files_table:
                log.warning("scheduler: no dlsupervisor_file table (run dlsupervisor initdb): files stay")
        return self._files_table

    def _lead(self) -> bool:
        holding = self.election.hold()
        if holding != self.leading:
            log.info(
                "scheduler: %s", "elected; now scheduling" if holding else "lost the election; standing by"
            )
            self.leading = holding
            self._answered_at = self.clock()  # a new leader's silence counts from here
        return holding

    # -- steps -------------------------------------------------------------------------

    def dispatch(self, routes: dict[int, Registration]) -> tuple[int, int]:
        """READY tasks of single-item subtypes: wake their items' workers, task → PROCESSING."""
        singles = [sub_type for sub_type, reg in routes.items() if not reg.multi]
        refs = self.store.dispatchable_items(singles, self.conf.batch_size)
        if not refs:
            return 0, 0
        unroutable = [ref for ref in refs if ref.sub_type not in routes]
        for sub_type, ids in _group(unroutable).items():
            remark = f"{remarks.INVALID_DATA} no worker serves item type {sub_type}"
            self.store.fail_items(ids, remark)
            log.warning("items %s: failed: %s", _ids(ids), remark)
        routed = [ref for ref in refs if ref.sub_type in routes]
        task_ids = sorted({ref.task_id for ref in refs})
        # PROCESSING first: should this process die before the push, the items are READY
        # in a PROCESSING task, which re-dispatch covers; the other order could strand a
        # READY task whose items all finished.
        self.store.mark_tasks_processing(task_ids)
        # A capped subtype's items are sent by re-dispatch, as many as each org has room for.
        self._push(routes, [ref for ref in routed if not routes[ref.sub_type].max_per_org])
        log.info("dispatched %d items of %d tasks (%s)", len(routed), len(task_ids), _ids(task_ids, "task"))
        return len(routed), len(unroutable)

    def dispatch_splits(self, routes: dict[int, Registration]) -> int:
        """READY multi-item tasks: a split job for a worker of their subtype."""
        multis = [sub_type for sub_type, reg in routes.items() if reg.multi]
        tasks = self.store.splittable_tasks(multis, self.conf.lease, self.conf.batch_size)
        by_queue: dict[str, list[str]] = defaultdict(list)
        for task_id, sub_type in tasks:
            by_queue[routes[sub_type].queue_key].append(queue.split_message(task_id))
        pushed = sum(self.queue.push(key, messages) for key, messages in by_queue.items())
        if pushed:
            log.info("sent %d split jobs", pushed)
        return pushed

    def warn_unserved(self, routes: dict[int, Registration]) -> None:
        """A task no live worker serves is left alone, with one warning per subtype."""
        for sub_type in self.store.unserved_subtypes(sorted(routes)):
            if sub_type not in self._warned_unserved:
                self._warned_unserved.add(sub_type)
                log.warning("tasks of sub_type %d are waiting: no live worker serves it", sub_type)

    def cancel(self) -> int:
        if self.deleting():
            self.store.mark_cancelled_files()
        cancelled = self.store.cancel_items()
        if cancelled:
            log.info("cancelled %d items of cancelled tasks", cancelled)
        return cancelled

    def roll_up(self) -> list[tuple[int, int, str | None]]:
        """PROCESSING tasks whose items are all terminal become DONE, FAILED or EXPIRED."""
        decisions = [outcomes.decide_task(t) for t in self.store.finished_tasks(self.conf.batch_size)]
        if decisions:
            self.store.close_tasks(decisions)
        for task_id, status, remark in decisions:
            log.info("task %d: %s%s", task_id, TaskStatus(status).name, f" ({remark})" if remark else "")
        return decisions

    def expire(self) -> tuple[int, int]:
        items, tasks = self.store.expire(self.conf.file_ttl, self.conf.batch_size)
        if items or tasks:
            log.info("expired %d items and %d tasks", items, tasks)
        return items, tasks

    def redispatch(self, routes: dict[int, Registration]) -> int:
        """READY items waiting longer than redispatch_after lost their wake-up: send it again.

        A capped subtype's items are sent instead when their org has room (a worker drops
        the wake-up of an item its cap holds back): each pass, the first few in each line
        of an org under the cap, and no others, so held-back items never cycle through
        the queue.  ZADD LT leaves a wake-up still queued as it is.
        """
        refs = self.store.stale_ready_items(self.conf.redispatch_after, self.conf.batch_size)
        refs = [ref for ref in refs if ref.sub_type in routes and not routes[ref.sub_type].max_per_org]
        for reg in routes.values():
            if reg.max_per_org:
                refs += self.store.open_items(reg.sub_type, reg.max_per_org, self.conf.batch_size)
        sent = self._push(routes, refs)
        if sent:
            log.info("re-sent %d waiting items", sent)
        return sent

    def recover_orphans(self) -> int:
        """PROCESSING items with no heartbeat for the lease time: back to READY (or give up)."""
        lease = self.conf.lease
        reason = f"owner lost (no heartbeat for {lease:g}s)"
        requeued = 0
        for item_id, token in self.store.orphans(lease, self.conf.batch_size):
            status, remark = remarks.requeue_outcome(token or "", reason)
            if self.store.requeue(item_id, token, status, remark, lease):
                requeued += 1
                log.warning("item %d: %s (was %s)", item_id, remark, token)
        return requeued

    def _push(self, routes: dict[int, Registration], refs: Iterable[ItemRef]) -> int:
        """Wake-ups at each item's place in its org's line (the queue's fair order)."""
        pushed = 0
        for sub_type, group in _refs_by_subtype(refs).items():
            messages = [queue.item_message(ref.item_id) for ref in group]
            pushed += self.queue.push(routes[sub_type].queue_key, messages, [(r.top, r.pos) for r in group])
        return pushed


def _refs_by_subtype(refs: Iterable[ItemRef]) -> dict[int, list[ItemRef]]:
    grouped: dict[int, list[ItemRef]] = defaultdict(list)
    for ref in refs:
        grouped[ref.sub_type].append(ref)
    return grouped


def _group(refs: Iterable[ItemRef]) -> dict[int, list[int]]:
    return {sub_type: [ref.item_id for ref in group] for sub_type, group in _refs_by_subtype(refs).items()}


def _ids(ids: list[int], noun: str = "item") -> str:
    if len(ids) <= 5:
        return f"{noun} " + ", ".join(map(str, ids))
    return f"{noun}s {ids[0]}..{ids[-1]}"
