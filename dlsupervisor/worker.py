"""The worker's loop: wait → claim → validate → export → record (architecture.md, "Processes").

One instance per worker process, built after fork.  Tests drive `run_once`
in-process; the supervisor runs `run` in a forked child with signal handlers
that set `stop` / raise Aborted (spawn.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from dlsupervisor import counters, logsetup, outcomes, queue, remarks
from dlsupervisor.config import Settings, SubtypeSettings
from dlsupervisor.errors import EX_ORPHANED, EX_RECYCLE, Aborted
from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus, TaskStatus
from dlsupervisor.notices import Notices
from dlsupervisor.queue import Popped, Queue
from dlsupervisor.registry import REGISTER_EVERY, Registration, Registry, open_registry
from dlsupervisor.retry import UNAVAILABLE, Outage, Refusals, retrying
from dlsupervisor.slots import NullSlot, Slot, SlotState
from dlsupervisor.store import Claim, Outcome, Recording, WorkerStore
from dlsupervisor.task import DownloadTaskBase
from dlsupervisor.toolkit import session as toolkit

log = logging.getLogger("dlsupervisor.worker")

POP_TIMEOUT = 1.0  # seconds one wait for work blocks, for callers driving run_once
IDLE_WAIT = 5.0  # the longest an idle worker waits for work between beats
STOP_CHECK = 0.5  # the longest one block on the queue lasts: how late a waiting worker sees a stop
COUNT_EVERY = 1.0  # seconds a busy worker's tallied outcomes wait for the metrics' counters
CHAIN_FOR = 1.0  # seconds of back-to-back items (each record with the next claim) between chores


@dataclass
class StopState:
    """Shared between the loop and the child's signal handlers."""

    requested: bool = False  # finish the current item, then exit
    busy: bool = False  # between claim attempt and recorded outcome
    holding: bool = False  # waiting for a wake-up, or holding one popped: a stop must not drop it
    aborted: bool = False  # the master's abort was raised; later SIGTERMs change nothing
    reopen_log: bool = False  # SIGUSR1: reopen the log file at the loop's next step

    @property
    def interruptible(self) -> bool:
        """Whether SIGTERM may unwind the process at once (StopNow): nothing in hand to lose."""
        return not self.busy and not self.holding


def reopen_log_if_asked(stop: StopState, who: str) -> None:
    """Reopen the log file if SIGUSR1 asked: here in the loop, as a handler must do no I/O."""
    if stop.reopen_log:
        stop.reopen_log = False
        logsetup.reopen()
        log.info("%s: log file reopened", who)


class Worker:
    def __init__(
        self,
        settings: Settings,
        sub: SubtypeSettings,
        route: Registration,
        handler: DownloadTaskBase,
        store: WorkerStore,
        work_queue: Queue,
        *,
        host: str,
        registry: Registry | None = None,
        slot: Slot | NullSlot | None = None,
        stop: StopState | None = None,
        parent_alive: Callable[[], bool] = lambda: True,
        label: str | None = None,
    ) -> None:
        self.settings = settings
        self.sub = sub
        self.route = route
        self.handler = handler
        self.store = store
        self.queue = work_queue
        self.registry = registry or open_registry(settings, store, work_queue)
        self.host = host
        self.pid = os.getpid()
        self.owner = remarks.owner(host, self.pid)
        self.slot = slot or NullSlot()
        handler.bind_progress(self.slot.progress)
        self.notices = Notices(
            sub, route.sub_type, handler, store, settings.web_secret, self._with_store, self.slot
        )
        self.stop = stop or StopState()
        self.parent_alive = parent_alive
        recorder = getattr(store, "record_file", None)  # the stored files' bookkeeping (filesweep.py)
        toolkit.attach(handler, settings.storage, settings.scheduler.file_ttl, recorder, settings.web)
        self.items_done = 0
        self.tally = counters.CountBuffer()  # outcomes not yet in the metrics' counters
        self._counted_at = time.monotonic()
        self._counts_failed = False
        self._ran = False  # handled a message since it last waited: look before blocking
        self._popped: Popped | None = None  # taken while recording, not an item: handled next
        self.label = label or f"{sub.name}#{os.getpid()}"  # SUBTYPE#SLOT under a master
        self._store_outage = Outage(log)
        self._refusals = Refusals(log, "a worker's call")
        self._queue_outage = Outage(log)
        self._registered_at = -REGISTER_EVERY
        # Beat well within the master's heartbeat_timeout, else as seldom as IDLE_WAIT.
        self.idle_wait = min(IDLE_WAIT, settings.supervisor.heartbeat_timeout / 4)

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Work until asked to stop, recycled, or orphaned; return the exit status."""
        self.slot.write(SlotState.IDLE)
        log.info(
            "worker %s: ready (sub_type %d, queue %s)", self.label, self.route.sub_type, self.route.queue_key
        )
        while not self.stop.requested:
            reopen_log_if_asked(self.stop, f"worker {self.label}")
            if not self.parent_alive():
                log.warning("worker %s: master is gone; exiting", self.label)
                return EX_ORPHANED
            try:
                self.run_once(self.idle_wait)
            except UNAVAILABLE:
                continue  # a stop request cut a retry short; the loop condition decides
            reason = self.recycle_reason()
            if reason:
                log.info("worker %s: recycling after %d items (%s)", self.label, self.items_done, reason)
                self.flush_counts()
                return EX_RECYCLE
        self.slot.write(SlotState.STOPPING)
        self.flush_counts()
        return EX_RECYCLE

    def run_once(self, timeout: float = POP_TIMEOUT) -> bool:
        """Wait up to `timeout` for one message and handle it (and one another kind of
        message taken from the queue meanwhile); True if there was one."""
        now = time.monotonic()
        self.slot.beat(now)
        if now - self._registered_at >= REGISTER_EVERY:
            self.register()
        self.deliver_notices()
        self.stop.holding = True
        try:
            popped = self._wait(timeout)
            if popped is None:
                return False
            while popped is not None:
                if self.stop.requested:
                    self._give_back(popped)
                    break
                self._handle(popped.text)
                self._ran = True
                popped, self._popped = self._popped, None
            if time.monotonic() - self._counted_at >= COUNT_EVERY:
                self.flush_counts()
            return True
        finally:
            self.stop.holding = False

    def flush_counts(self) -> None:
        """Add the tallied outcomes to the metrics' counters (counters.py).  Refused or
        unreachable, they stay tallied for the next flush: a metric is never worth a retry."""
        self._counted_at = time.monotonic()
        rows = self.tally.rows()
        if not rows:
            return
        busy, self.stop.busy = self.stop.busy, True  # a stop lets the statement finish
        try:
            self.store.add_counts(rows)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            if not self._counts_failed:
                log.warning("worker %s: metrics counters not updated (%s)", self.label, type(exc).__name__)
            self._counts_failed = True
            return
        finally:
            self.stop.busy = busy
        self._counts_failed = False
        self.tally.sums.clear()

    def _wait(self, timeout: float) -> Popped | None:
        """Wait up to `timeout` for a wake-up, in blocks of at most STOP_CHECK.

        A signal cannot cut a block short safely: raised after the server popped
        (its reply on the wire or half read), it would drop the message, and
        nothing can tell afterwards whether that happened.  So while the worker
        waits or holds a message (stop.holding) SIGTERM only sets the flag, and
        short blocks see it within STOP_CHECK: a few more idle round trips a
        second, for a stop that is prompt and loses nothing.

        A worker that has just run something first looks without blocking: an
        empty queue then nudges the scheduler, whose next pass dispatches the READY
        rows an application inserted since its last one, instead of a poll later.
        """
        deadline = time.monotonic() + timeout
        if self._ran:  # just worked: if nothing is queued, ask the scheduler for a pass now
            self._ran = False
            popped = self._with_queue(lambda: self.queue.pop(self.route, 0))
            if popped is not None or self.stop.requested:
                return popped
            self._with_queue(self.queue.nudge)
        while True:
            block = max(0.01, min(STOP_CHECK, deadline - time.monotonic()))
            popped = self._with_queue(lambda block=block: self.queue.pop(self.route, block))
            if popped is not None or self.stop.requested or time.monotonic() >= deadline:
                return popped
            if self.tally.sums:  # idle: what it counted goes to the metrics now
                self.flush_counts()

    def _give_back(self, popped: Popped) -> None:
        """A stop came with a wake-up in hand: queue it again, in its place, for another worker."""
        try:
            self.queue.give_back(self.route.queue_key, popped)
            log.info("worker %s: stopping; %s given back to the queue", self.label, popped.text)
        except UNAVAILABLE as exc:  # lost: the scheduler re-sends READY work after redispatch_after
            self._queue_outage.down(exc)

    def _handle(self, message: str) -> None:
        parsed = queue.parse_message(message)
        if parsed is None:
            log.warning("worker %s: ignoring a message that is not ours: %r", self.label, message[:80])
            return
        kind, number = parsed
        if kind == queue.ITEM:
            self.run_item(number)
        else:
            self.run_split(number)

    def deliver_notices(self) -> int:
        """Completion notices due for this subtype, between items (notices.py)."""
        self.stop.busy = True  # a stop request lets a notice being delivered finish
        try:
            return self.notices.deliver_due()
        finally:
            self.stop.busy = False

    def register(self) -> None:
        try:
            self.registry.register(self.route)
            self._registered_at = time.monotonic()
            self._queue_outage.up()
        except UNAVAILABLE as exc:  # a lost registration costs dispatch latency only
            self._queue_outage.down(exc)

    def recycle_reason(self) -> str | None:
        if self.sub.max_items and self.items_done >= self.sub.max_items:
            return f"max_items {self.sub.max_items}"
        if self.sub.max_memory_mb and self.stop.busy is False:
            rss = tree_rss_mb(os.getpid())
            if rss > self.sub.max_memory_mb:
                return f"RSS {rss:.0f} MB > max_memory_mb {self.sub.max_memory_mb}"
        return None

    # -- one item ----------------------------------------------------------------------

    def run_item(self, item_id: int) -> bool:
        """Claim and export one item, then the next ones queued: True if it ran any.

        The claim takes only a READY item of a task not cancelled, routed to this
        subtype: a duplicate delivery, or an item already taken, is skipped.  While
        more wake-ups are queued (for up to CHAIN_FOR, then the loop's chores), each
        outcome is recorded in the same round trip as the next item's claim.
        """
        self.stop.busy = True  # from here a stop request lets the claim and the export finish
        try:
            claim = self._claim(item_id)
            ran = claim is not None
            until = time.monotonic() + CHAIN_FOR
            while claim is not None:
                item_id, claim = self._export(item_id, claim, until)
            return ran
        finally:
            self.stop.busy = False
            self.slot.write(SlotState.IDLE)

    def _claim(self, item_id: int) -> Claim | None:
        asked = time.monotonic()
        claim = self._with_store(
            lambda: self.store.claim(item_id, self.owner, self.route.sub_type, self.sub.max_per_org)
        )
        if claim is None:
            log.debug("worker %s: item %d is not ours to run now; skipped", self.label, item_id)
            return None
        return self._checked(item_id, claim, asked)

    def _checked(self, item_id: int, claim: Claim, asked: float) -> Claim | None:
        """The claim, unless its answer came so late that it may have been taken over."""
        if self._still_ours(asked, lambda: self._renew_item(item_id, claim.token)):
            return claim
        log.warning("item %d: claimed, but answered too late: taken over meanwhile; skipped", item_id)
        return None

    def _export(self, item_id: int, claim: Claim, until: float) -> tuple[int, Claim | None]:
        """Run the claimed item and record its outcome; the next item, if it claimed one."""
        item = claim.item
        self.slot.write(SlotState.ITEM, item_id, claim.attempt)
        log.debug(
            "item %d (task %d): started by %s, attempt %d", item_id, item.task_id, self.label, claim.attempt
        )
        began = time.monotonic()
        outcome = outcomes.export_item(self.handler, item)
        outcome = dataclasses.replace(outcome, seconds=time.monotonic() - began)
        done = Recording(item_id, claim.token, outcome, self.settings.scheduler.file_ttl)
        next_id = self._next_item() if time.monotonic() < until else None
        asked = time.monotonic()
        if next_id is None:
            recorded, claimed = self._with_store(lambda: self.store.record(*done, count=False), True), None
        else:
            recorded, claimed = self._with_store(
                lambda: self.store.record_and_claim(
                    done, next_id, self.owner, self.route.sub_type, self.sub.max_per_org
                ),
                True,
            )
        self._recorded(done, item.task_id, recorded)
        if next_id is None or claimed is None:
            return 0, None
        return next_id, self._checked(next_id, claimed, asked)

    def _next_item(self) -> int | None:
        """The next queued item this worker may take now, without waiting: its id.  Another
        kind of message waits in `_popped` for the loop."""
        if self.stop.requested or not self.parent_alive() or self._last_before_recycling():
            return None
        popped = self._with_queue(lambda: self.queue.pop(self.route, 0))
        parsed = queue.parse_message(popped.text) if popped is not None else None
        if parsed is not None and parsed[0] == queue.ITEM:
            return parsed[1]
        self._popped = popped
        return None

    def _last_before_recycling(self) -> bool:
        return bool(self.sub.max_items) and self.items_done + 1 >= self.sub.max_items

    def _recorded(self, done: Recording, task_id: int, recorded: bool) -> None:
        if recorded:
            name = counters.outcome_name(done.outcome.status, done.outcome.remark)
            self.tally.add(self.route.sub_type, name, done.outcome.seconds)
        self.items_done += 1
        self._log_outcome(done.item_id, task_id, done.outcome, recorded)

    def _log_outcome(self, item_id: int, task_id: int, outcome: Outcome, recorded: bool) -> None:
        if not recorded:
            log.warning(
                "item %d (task %d): outcome not recorded, the item is no longer held (%s)",
                item_id,
                task_id,
                outcomes.describe(outcome),
            )
        elif outcome.status == ItemStatus.DONE:
            log.info("item %d (task %d): %s", item_id, task_id, outcomes.describe(outcome))
        else:
            log.warning("item %d (task %d): failed: %s", item_id, task_id, outcome.remark)

    # -- one split ---------------------------------------------------------------------

    def run_split(self, task_id: int) -> bool:
        """Split a multi-item task, all or nothing; True if this worker committed it."""
        task = self._with_store(lambda: self.store.load_task(task_id))
        if task is None or task.status != TaskStatus.READY or task.sub_type != self.route.sub_type:
            return False
        token = remarks.split_token(self.host, self.pid)
        lease = self.settings.scheduler.lease
        self.stop.busy = True
        try:
            asked = time.monotonic()
            if not self._with_store(lambda: self.store.claim_split(task_id, token, lease)):
                return False
            if not self._still_ours(asked, lambda: self._renew_split(task_id, token)):
                log.warning("task %d: split claimed, but answered too late: taken over meanwhile", task_id)
                return False
            self.slot.write(SlotState.SPLIT, task_id)
            log.info("task %d: splitting in %s", task_id, self.label)
            items, problem = self._split(task)
            if problem:
                self._with_store(lambda: self.store.fail_task(task_id, problem, token), True)
                log.warning("task %d: %s", task_id, problem)
                return False
            committed = self._with_store(lambda: self.store.commit_split(task_id, token, items), True)
            if committed is None:
                log.warning("task %d: split not committed, the task is no longer held", task_id)
                return False
            if committed.kept:
                log.warning(
                    "task %d: already has %d items; the split's items are not added", task_id, committed.kept
                )
                return True
            ids = committed.ids
            log.info("task %d: split into %d items (%s)", task_id, len(ids), _id_range(ids))
            own = [i for i, item in zip(ids, items, strict=True) if item.type == self.route.sub_type]
            self._push_items(own)
            return True
        finally:
            self.stop.busy = False
            self.slot.write(SlotState.IDLE)

    def _split(self, task: DownloadTaskMain) -> tuple[list[DownloadItem], str | None]:
        try:
            returned = self.handler.split_task(task)
        except Aborted:
            raise
        except BaseException as exc:
            return [], remarks.error_text(remarks.SPLIT_FAILED, exc)
        return outcomes.check_split(task, returned)

    def _push_items(self, item_ids: list[int]) -> None:
        """Wake workers for new items now, each at its place in its org's line; if Redis is
        away the scheduler re-sends them."""
        if not item_ids or self.sub.max_per_org:  # capped: the scheduler sends what has room
            return
        refs = self._with_store(lambda: self.store.ranked_items(item_ids), True)
        messages = [queue.item_message(ref.item_id) for ref in refs]
        try:
            self.queue.push(self.route.queue_key, messages, [(ref.top, ref.pos) for ref in refs])
        except UNAVAILABLE as exc:
            self._queue_outage.down(exc)

    # -- claims answered late ----------------------------------------------------------

    def _still_ours(self, asked: float, renew: Callable[[], bool]) -> bool:
        """Whether a claim asked for at `asked` may be worked on.

        A claim's lease runs from when the database took it.  An answer that came
        back after half the lease (a partition that held it back) may belong to
        work another supervisor has taken over since: renew the lease, verifying
        the claim is still ours, until a renewal is answered in time.
        """
        half = self.settings.scheduler.lease / 2
        while time.monotonic() - asked >= half:
            asked = time.monotonic()
            if not renew():
                return False
        return True

    def _renew_item(self, item_id: int, token: str) -> bool:
        """Refresh the item's heartbeat, then read that it is still ours: a takeover
        replaces the token for good, so ours after the refresh means fresh and ours."""
        self._with_store(lambda: self.store.heartbeat([item_id], []))
        states = self._with_store(lambda: self.store.held_states([item_id]))
        status, remark, _ = states.get(item_id, (None, None, None))
        return status == ItemStatus.PROCESSING and remark == token

    def _renew_split(self, task_id: int, token: str) -> bool:
        """Claiming again with our own token refreshes the claim, if it is still ours."""
        return self._with_store(lambda: self.store.claim_split(task_id, token, self.settings.scheduler.lease))

    # -- backends ----------------------------------------------------------------------

    def _with_store(self, call, must_finish: bool = False):
        """Retry through a database outage, or a call it refuses (issue 11: a refused record
        is neither lost nor a crash); give up on a stop request unless `must_finish`."""
        give_up = (lambda: False) if must_finish else (lambda: self.stop.requested)
        return retrying(
            call, self._store_outage, give_up=give_up, on_wait=self.slot.beat, refusals=self._refusals
        )

    def _with_queue(self, call):
        try:
            return retrying(
                call, self._queue_outage, give_up=lambda: self.stop.requested, on_wait=self.slot.beat
            )
        except UNAVAILABLE:
            return None


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 1e6


def _id_range(ids: list[int]) -> str:
    return f"items {ids[0]}..{ids[-1]}" if len(ids) > 1 else f"item {ids[0]}"
