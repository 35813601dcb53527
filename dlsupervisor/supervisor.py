"""The master: forks the scheduler and the workers, and keeps them as configured.

Its loop (after gunicorn's arbiter) waits on the signal inbox until the next
step is due (a timeout's deadline, a kill, a restart, a check of held items;
at most IDLE_TICK), then runs a fixed sequence of level-triggered steps, each
comparing what is with what should be: handle signals, reap exits, read the
children's slots, enforce deadlines (timeouts, cancels, kills), sync with the
database (outcomes, heartbeats), reconcile the children with the
configuration, write the status file.  A child's exit wakes it at once
(SIGCHLD).  Nothing in it blocks for long, and it never imports or runs user
code (DESIGN invariant 3) -- except in standalone mode (standalone.py), where
the calling process is a user's script that already built its handler and
hands the instance in, for its workers to inherit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Mapping
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any

import setproctitle

from dlsupervisor import config, fence, logsetup, proctree, remarks, spawn, statusfile, systemd
from dlsupervisor.child import Child, ChildState, describe_exit
from dlsupervisor.config import Settings, SubtypeSettings
from dlsupervisor.errors import EX_FAILURE, EX_OK, ConfigError
from dlsupervisor.fence import FENCED, Fence
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.retry import UNAVAILABLE, Outage
from dlsupervisor.signals import SignalInbox
from dlsupervisor.slots import Control, Slot, SlotState
from dlsupervisor.store import Outcome, Store, open_store

if TYPE_CHECKING:
    from dlsupervisor.task import DownloadTaskBase

log = logging.getLogger("dlsupervisor.master")

TICK = 0.1  # seconds between passes while draining or stopping, or retrying a database write
IDLE_TICK = 0.5  # the longest the loop sleeps (it also notices a worker going busy by then)
BOOT_TICK = 0.02  # while a child boots: READY=1 and the status follow its boot closely
HELD_CHECK_EVERY = 0.5  # seconds between checks that held items are still ours (cancel)
STATUS_EVERY = 5.0  # seconds between status file writes when nothing changed
READY_AFTER = 5.0  # send READY=1 after this long even if some child is still booting
DB_TIMEOUT = 2.0  # the master's database calls must not stall its loop for long
DB_RETRY = 1.0  # seconds between the master's tries while the database is away
CANCELLED = Outcome(int(ItemStatus.CANCELLED), remarks.CANCELLED)


class Phase(Enum):
    RUNNING = "running"
    DRAINING = "draining"  # SIGTERM: in-flight items may finish until stop_timeout
    STOPPING = "stopping"  # SIGQUIT, or a second Ctrl-C: everything killed now
    EXITED = "exited"


def child_conf(settings: Settings, sub: SubtypeSettings | None) -> tuple[Any, ...]:
    """What a child was started with, minus what it does not use: a reload compares these."""
    shared = (settings.database, settings.redis, settings.scheduler)
    if sub is None:
        return ("scheduler", *shared)
    return (dataclasses.replace(sub, workers=0), *shared)


class Master:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        handlers: Mapping[str, DownloadTaskBase] | None = None,
        scheduler: bool = True,
    ) -> None:
        """`handlers` (subtype name -> instance) and `scheduler=False` are standalone mode's."""
        self.settings = settings
        self.clock = clock
        self.handlers = dict(handlers or {})
        self.run_scheduler = scheduler
        self.inbox = SignalInbox()
        self.lifeline = spawn.Lifeline()
        self.children: list[Child] = []
        self.phase = Phase.RUNNING
        self.scale_delta = 0
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = 0.0
        self.ready_sent = False
        self.drain_deadline: float | None = None
        self.exit_grace_until: float | None = None
        self.store: Store | None = None
        self.db_outage = Outage(log)
        self.db_retry_at = 0.0
        self.fence = Fence()
        self.pending: list[tuple[str, Callable[[Store], Any]]] = []
        self.next_held_check = 0.0
        self.next_heartbeat = 0.0
        self.next_status = 0.0
        self.status_written: tuple[Any, ...] | None = None
        self.status_path = os.path.join(settings.supervisor.run_dir, "status.json")

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; the exception boundary of the master."""
        self.start()
        try:
            while self.phase is not Phase.EXITED:
                for signum in self.inbox.wait(self.next_wait(self.clock())):
                    self.on_signal(signum, self.clock())
                self.tick(self.clock())
        except Exception:
            log.exception("master crashed; killing every child")
            self.emergency_stop()
            return EX_FAILURE
        finally:
            self.finish()
        log.info("master: stopped")
        return EX_OK

    def start(self) -> None:
        setproctitle.setproctitle(f"{spawn.TITLE} master -c {self.settings.path}")
        os.makedirs(self.settings.supervisor.run_dir, exist_ok=True)
        self.inbox.install()
        self.started_at = self.clock()
        self.heartbeat_every = min(5.0, self.settings.scheduler.lease / 4)
        self.preload()
        log.info("master: started (pid %d, config %s)", self.pid, self.settings.path)

    def preload(self) -> None:
        """Import the backends every child uses (never user code), so each fork inherits them.

        The store connects on first use, so no connection is shared with a child.
        """
        self.store = open_store(self.settings.database, timeout=self.db_timeout())
        if self.settings.redis is not None:
            import dlsupervisor.queue.redis  # noqa: F401
        import dlsupervisor.scheduler  # noqa: F401

    def next_wait(self, now: float) -> float:
        """Seconds until a step is due; the loop sleeps that long unless a signal comes first."""
        due = [now + self.idle_tick(), self.next_status]
        if self.phase is not Phase.RUNNING or self.pending:
            due.append(now + TICK)
        if not self.ready_sent:
            due.append(self.started_at + READY_AFTER)
        busy = False
        for child in self.children:
            if child.state is ChildState.STARTING:
                due.append(now + BOOT_TICK)
            elif child.state is ChildState.BACKOFF:
                due.append(child.next_start_at)
            elif child.state is ChildState.KILLING:
                if not child.hard_killed:
                    due.append(child.kill_deadline)
            elif child.busy:
                busy = True
                deadline = self.timeout_deadline(child)
                if deadline is not None:
                    due.append(deadline)
                due.append(self.fence.deadline(child.view.started, self.settings.scheduler.lease))
        if busy:
            due += [self.next_held_check, self.next_heartbeat]
        return max(0.0, min(due) - now)

    def idle_tick(self) -> float:
        """IDLE_TICK, or less when a timeout or heartbeat_timeout is short: a quarter of it."""
        limits = [sub.timeout for sub in self.settings.subtypes if sub.timeout]
        limits.append(self.settings.supervisor.heartbeat_timeout)
        return min(IDLE_TICK, *(limit / 4 for limit in limits))

    def tick(self, now: float) -> None:
        self.reap(now)
        self.read_slots()
        self.enforce_deadlines(now)
        self.sync_database(now)
        self.enforce_fence(self.clock())
        self.reconcile(now)
        self.write_status(now)
        self.advance_phase(now)

    # -- signals -----------------------------------------------------------------------

    def on_signal(self, signum: int, now: float) -> None:
        """Only sets intents and phases; the steps act on them."""
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.phase is Phase.RUNNING:
                self.begin_drain(now, signal.Signals(signum).name)
            elif self.phase is Phase.DRAINING and signum == signal.SIGINT:
                self.begin_fast_stop(now, "second SIGINT")
        elif signum == signal.SIGQUIT:
            self.begin_fast_stop(now, "SIGQUIT")
        elif signum == signal.SIGHUP:
            self.reload(now)
        elif signum == signal.SIGUSR1:
            logsetup.reopen()
            self.signal_children(signal.SIGUSR1)
            log.info("master: log file reopened")
        elif signum in (signal.SIGTTIN, signal.SIGTTOU):
            self.scale_delta += 1 if signum == signal.SIGTTIN else -1
            log.info(
                "master: %s: worker count %+d per subtype until the next reload",
                signal.Signals(signum).name,
                self.scale_delta,
            )

    def reload(self, now: float) -> None:
        """Parse, validate, diff, act: a bad file changes nothing (SPEC §2)."""
        systemd.reloading()
        try:
            new = config.load(self.settings.path)
            problem = preflight(new, self.inbox, self.lifeline)
            if problem:
                raise ConfigError(problem)
        except ConfigError as exc:
            log.error("reload failed, configuration unchanged: %s", exc)
            systemd.notify("READY=1")
            return
        self.settings = new
        self.scale_delta = 0
        logsetup.configure(new.supervisor.log_level, new.supervisor.log_file, "master")
        for child in self.children:
            if child.retiring:
                continue
            sub = new.subtype(child.subtype) if child.subtype else None
            removed = child.subtype is not None and sub is None
            if removed or child.conf != child_conf(new, sub):
                self.retire(child, "configuration changed" if not removed else "subtype removed")
        log.info("master: reloaded %s", new.path)
        systemd.notify("READY=1")

    def signal_children(self, signum: int) -> None:
        for child in self.children:
            if child.live:
                try:
                    os.kill(child.pid, signum)
                except ProcessLookupError:
                    pass

    # -- reaping -----------------------------------------------------------------------

    def reap(self, now: float) -> None:
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.by_pid(pid)
            if child is not None:
                self.on_exit(child, os.waitstatus_to_exitcode(raw), now)

    def on_exit(self, child: Child, status: int, now: float) -> None:
        if child.slot is not None:
            child.observe(child.slot.read())
        view = child.killed_view or child.view  # what it held when we killed it, else at its death
        if view is not None and view.state in (SlotState.ITEM, SlotState.SPLIT):
            self.settle_work(child, view.state, view.work_id, view.attempt, status)
        # Leave no grandchild behind, however the child ended: what is left of its process
        # group, and what a kill's snapshot found outside it.
        proctree.kill_tree(child.pid, proctree.alive(child.tree))
        expected = child.retiring or self.phase is not Phase.RUNNING
        conf = self.settings.supervisor
        child.exited(status, now, conf.min_uptime, conf.max_backoff, expected)
        if child.retiring or self.phase is not Phase.RUNNING:
            self.children.remove(child)
        else:
            child.schedule_restart(now)

    def settle_work(self, child: Child, state: SlotState, work_id: int, attempt: int, status: int) -> None:
        """The outcome of the work a child held when it exited, unless already recorded."""
        reason = child.kill_reason
        if reason in ("timeout", "cancel"):
            return  # recorded before the kill
        pid = child.pid
        if state == SlotState.SPLIT:
            token = remarks.split_token(self.host, pid)
            if reason in ("stop", FENCED):
                self.write(f"task {work_id}: split released", lambda s: s.release_split(work_id, token))
            else:
                remark = f"{remarks.SPLIT_FAILED} {remarks.WORKER_DIED} {describe_exit(status)}"
                self.write(f"task {work_id}: {remark}", lambda s: s.fail_task(work_id, remark, token))
            return
        token = remarks.claim_token(self.host, pid, attempt)
        if reason in ("stop", FENCED):
            why = FENCED if reason == FENCED else "supervisor stopped"
            new_status, remark = remarks.requeue_outcome(token, why)
            self.write(
                f"item {work_id}: {remark}", lambda s: s.requeue(work_id, token, new_status, remark, None)
            )
        else:
            remark = f"{remarks.WORKER_DIED} {describe_exit(status)}"
            outcome = Outcome(int(ItemStatus.FAILED), remark)
            self.write(f"item {work_id}: failed: {remark}", lambda s: s.record(work_id, token, outcome, 0))

    # -- deadlines ---------------------------------------------------------------------

    def read_slots(self) -> None:
        for child in self.children:
            if child.slot is not None:
                child.observe(child.slot.read())

    def enforce_deadlines(self, now: float) -> None:
        conf = self.settings.supervisor
        for child in self.children:
            if not child.live:
                continue
            if child.state is ChildState.KILLING:
                if not child.hard_killed and now >= child.kill_deadline:
                    child.tree = proctree.kill_tree(child.pid, child.tree)
                    child.hard_killed = True
                continue
            if self.phase is Phase.DRAINING and now >= self.drain_deadline:
                self.kill(child, "stop", now)
            elif child.busy and self.past_timeout(child, now):
                self.kill_for_timeout(child, now)
            elif child.state is not ChildState.STOPPING and not child.busy:
                silent = now - (child.view.beat if child.view else child.spawned_at)
                if silent > conf.heartbeat_timeout:
                    self.kill(child, "hung", now)

    def past_timeout(self, child: Child, now: float) -> bool:
        deadline = self.timeout_deadline(child)
        return deadline is not None and now >= deadline

    def timeout_deadline(self, child: Child) -> float | None:
        """When the child's current work runs out of time (None: no limit)."""
        sub = self.settings.subtype(child.subtype) if child.subtype else None
        limit = sub.timeout if sub else 0
        return child.view.started + limit if limit else None

    def kill_for_timeout(self, child: Child, now: float) -> None:
        """Record the outcome first, then kill: a late result then matches nothing."""
        view = child.view
        limit = self.settings.subtype(child.subtype).timeout
        remark = f"{remarks.TIMEOUT} ran longer than {limit:g}s; process tree killed"
        if view.state == SlotState.SPLIT:
            token = remarks.split_token(self.host, child.pid)
            split_remark = f"{remarks.SPLIT_FAILED} {remark}"
            self.write(
                f"task {view.work_id}: {split_remark}",
                lambda s: s.fail_task(view.work_id, split_remark, token),
            )
        else:
            token = remarks.claim_token(self.host, child.pid, view.attempt)
            outcome = Outcome(int(ItemStatus.FAILED), remark)
            self.write(
                f"item {view.work_id}: failed: {remark}", lambda s: s.record(view.work_id, token, outcome, 0)
            )
        self.kill(child, "timeout", now)

    def kill(self, child: Child, reason: str, now: float, grace: float | None = None) -> None:
        """Abort the child's work and stop its tree: SIGTERM now, SIGKILL after kill_grace."""
        if grace is None:
            grace = self.settings.supervisor.kill_grace
        if self.phase is Phase.STOPPING:
            grace = 0.0
        child.begin_kill(reason, now, grace)
        child.killed_view = child.view  # an aborted worker may write IDLE while unwinding
        child.slot.request(Control.ABORT)
        child.tree = proctree.signal_tree(child.pid, signal.SIGKILL if grace == 0 else signal.SIGTERM)
        child.hard_killed = grace == 0

    # -- the database ------------------------------------------------------------------

    def db(self) -> Store | None:
        """The master's connection, unless it is backing off after a failure."""
        if self.clock() < self.db_retry_at:
            return None
        if self.store is None:
            self.store = open_store(self.settings.database, timeout=self.db_timeout())
        return self.store

    def db_timeout(self) -> float:
        return fence.db_timeout(self.settings.scheduler.lease, DB_TIMEOUT)

    def call_db(self, call: Callable[[Store], Any]) -> tuple[bool, Any]:
        store = self.db()
        if store is None:
            return False, None
        try:
            result = call(store)
        except UNAVAILABLE as exc:
            self.db_outage.down(exc)
            self.db_retry_at = self.clock() + fence.db_timeout(self.settings.scheduler.lease, DB_RETRY)
            return False, None
        self.db_outage.up()
        lifted = self.fence.lift(self.clock())
        if lifted is not None:
            log.warning("fence: lifted; the database answers again (%.1fs after fencing)", lifted)
        return True, result

    def write(self, what: str, call: Callable[[Store], Any]) -> None:
        """An outcome the master records: now if it can, else on a later tick."""
        done, applied = self.call_db(call)
        if done:
            log.log(
                logging.WARNING if applied else logging.INFO,
                "%s%s",
                what,
                "" if applied else " (already settled)",
            )
        else:
            self.pending.append((what, call))

    def sync_database(self, now: float) -> None:
        if self.db_outage.since is not None:
            self.call_db(lambda s: s.ping())  # at most once a second: say when it is back
        pending, self.pending = self.pending, []
        for what, call in pending:
            self.write(what, call)
        busy = [c for c in self.children if c.live and c.busy and c.state is not ChildState.KILLING]
        if busy and now >= self.next_held_check:
            self.next_held_check = now + HELD_CHECK_EVERY
            self.check_held(busy, now)
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.heartbeat_every
            items = [c.view.work_id for c in busy if c.view.state == SlotState.ITEM]
            tasks = [c.view.work_id for c in busy if c.view.state == SlotState.SPLIT]
            if items or tasks:
                sent = self.clock()
                if self.call_db(lambda s: s.heartbeat(items, tasks))[0]:
                    self.fence.answered(sent)
                else:
                    self.next_heartbeat = max(self.db_retry_at, now + TICK)  # retry before the fence

    def enforce_fence(self, now: float) -> None:
        """Stop every export whose heartbeat the database has not taken for half the lease."""
        lease = self.settings.scheduler.lease
        due = [
            c
            for c in self.children
            if c.live
            and c.busy
            and c.state is not ChildState.KILLING
            and self.fence.due(c.view.started, lease, now)
        ]
        if not due:
            return
        log.error(
            "fence: database unreachable: no heartbeat answered for %.1fs (the lease is %gs); "
            "stopping %d exports (%s) before another supervisor may take them over",
            now - max(self.fence.last_ok, min(c.view.started for c in due)),
            lease,
            len(due),
            ", ".join(f"{c.view.state.name.lower()} {c.view.work_id}" for c in due),
        )
        self.fence.fenced(now)
        for child in due:
            self.kill(child, FENCED, now, fence.kill_grace(lease, self.settings.supervisor.kill_grace))

    def check_held(self, busy: list[Child], now: float) -> None:
        """Kill exports whose item was cancelled, or taken from us, within HELD_CHECK_EVERY."""
        items = {c.view.work_id: c for c in busy if c.view.state == SlotState.ITEM}
        ok, states = self.call_db(lambda s: s.held_states(list(items)))
        if not ok:
            return
        for item_id, (status, remark, task_status) in states.items():
            child = items[item_id]
            if child.state is ChildState.KILLING or child.view.work_id != item_id:
                continue
            token = remarks.claim_token(self.host, child.pid, child.view.attempt)
            if status == ItemStatus.PROCESSING and remark == token and task_status != TaskStatus.CANCELLED:
                continue
            if status == ItemStatus.PROCESSING and remark == token:
                self.write(
                    f"item {item_id}: cancelled", lambda s, i=item_id, t=token: s.record(i, t, CANCELLED, 0)
                )
            elif status not in (ItemStatus.READY, ItemStatus.CANCELLED, ItemStatus.PROCESSING):
                continue  # the worker recorded its outcome; its slot will say so next tick
            self.kill(child, "cancel", now)

    # -- reconcile ---------------------------------------------------------------------

    def wanted(self) -> dict[str | None, int]:
        """How many children each role should have: None is the scheduler."""
        counts: dict[str | None, int] = {None: 1} if self.run_scheduler else {}
        for sub in self.settings.subtypes:
            counts[sub.name] = max(0, sub.workers + self.scale_delta)
        return counts

    def reconcile(self, now: float) -> None:
        if self.phase is not Phase.RUNNING:
            return
        wanted = self.wanted()
        for child in list(self.children):
            if not child.retiring and child.subtype not in wanted:
                self.retire(child, "subtype removed")
        for name, count in wanted.items():
            active = [c for c in self.children if c.subtype == name and not c.retiring]
            for extra in sorted(active, key=lambda c: (c.busy, -c.slot_no))[: max(0, len(active) - count)]:
                self.retire(extra, "scaled down")
            used = {c.slot_no for c in active}
            for _ in range(count - len(active)):
                slot_no = next(n for n in range(1, count + len(used) + 2) if n not in used)
                used.add(slot_no)
                self.children.append(self.new_child(name, slot_no, now))
        for child in self.children:
            if child.state is ChildState.BACKOFF and now >= child.next_start_at:
                self.spawn(child, now)

    def new_child(self, subtype: str | None, slot_no: int, now: float) -> Child:
        sub = self.settings.subtype(subtype) if subtype else None
        name = "scheduler" if subtype is None else f"{subtype}#{slot_no}"
        role = "scheduler" if subtype is None else "worker"
        return Child(name, role, subtype, slot_no, child_conf(self.settings, sub), next_start_at=now)

    def spawn(self, child: Child, now: float) -> None:
        slot = Slot()
        lifeline = self.lifeline.read_fd
        if child.subtype is None:
            main = partial(spawn.scheduler_main, self.settings, slot, self.pid, lifeline)
        else:
            sub = self.settings.subtype(child.subtype)
            main = partial(
                spawn.worker_main,
                self.settings,
                sub,
                child.slot_no,
                slot,
                self.pid,
                self.host,
                lifeline,
                self.handlers.get(child.subtype),
            )
        pid = spawn.fork_child(self.inbox, main, self.lifeline)
        child.spawned(pid, slot, now)

    def retire(self, child: Child, why: str) -> None:
        """Let it finish its current item, then go; a child not running yet just goes."""
        child.retiring = True
        if child.state in (ChildState.STARTING, ChildState.RUNNING):
            self.soft_stop(child, why)
        elif child.state is ChildState.BACKOFF:
            self.children.remove(child)

    def soft_stop(self, child: Child, why: str) -> None:
        child.begin_stop(why)
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    # -- stopping ----------------------------------------------------------------------

    def begin_drain(self, now: float, why: str) -> None:
        stop_timeout = self.settings.supervisor.stop_timeout
        log.info("master: %s: draining; in-flight exports have %gs to finish", why, stop_timeout)
        systemd.notify("STOPPING=1")
        self.phase = Phase.DRAINING
        self.drain_deadline = now + stop_timeout
        for child in list(self.children):
            if child.state in (ChildState.STARTING, ChildState.RUNNING):
                self.soft_stop(child, "supervisor stopping")
            elif child.state is ChildState.BACKOFF:
                self.children.remove(child)

    def begin_fast_stop(self, now: float, why: str) -> None:
        log.warning("master: %s: stopping now; in-flight items go back to READY", why)
        systemd.notify("STOPPING=1")
        self.phase = Phase.STOPPING
        for child in list(self.children):
            if child.live and child.state is not ChildState.KILLING:
                self.kill(child, "stop", now)
            elif child.live and not child.hard_killed:
                child.tree = proctree.kill_tree(child.pid, child.tree)
                child.hard_killed = True
            elif not child.live:
                self.children.remove(child)

    def advance_phase(self, now: float) -> None:
        if self.phase is Phase.RUNNING:
            if not self.ready_sent and (self.all_booted() or now - self.started_at > READY_AFTER):
                self.ready_sent = True
                systemd.notify("READY=1", f"STATUS=supervising {len(self.children)} children")
                log.info("master: ready (%d children)", len(self.children))
        elif not any(child.live for child in self.children):
            if self.exit_grace_until is None:
                self.exit_grace_until = now + 5.0  # a few ticks to record what the children held
            if not self.pending or now >= self.exit_grace_until:
                if self.pending:
                    log.error(
                        "master: %d outcomes not recorded (database unreachable); "
                        "their items are recovered after the lease",
                        len(self.pending),
                    )
                self.phase = Phase.EXITED

    def all_booted(self) -> bool:
        return bool(self.children) and all(c.state is not ChildState.STARTING for c in self.children)

    def emergency_stop(self) -> None:
        for child in self.children:
            if child.live:
                proctree.kill_tree(child.pid, child.tree)

    def finish(self) -> None:
        if self.store is not None:
            self.store.close()
        try:
            os.unlink(self.status_path)
        except OSError:
            pass

    # -- status ------------------------------------------------------------------------

    def by_pid(self, pid: int) -> Child | None:
        return next((c for c in self.children if c.pid == pid), None)

    def write_status(self, now: float) -> None:
        """At once when a child's state changed, else every STATUS_EVERY."""
        signature = self.status_signature()
        if now < self.next_status and signature == self.status_written:
            return
        self.next_status = now + STATUS_EVERY
        self.status_written = signature
        wall = time.time()
        statusfile.write(self.status_path, self.status(now, wall))

    def status_signature(self) -> tuple[Any, ...]:
        children = tuple(
            (
                child.name,
                child.pid,
                child.status_state(),
                child.view.work_id if child.busy else None,
                child.restarts,
                child.next_start_at if child.state is ChildState.BACKOFF else None,
            )
            for child in self.children
        )
        return (self.phase, self.ready_sent, self.scale_delta, children)

    def status(self, now: float, wall: float) -> dict[str, Any]:
        children = []
        for child in self.children:
            view = child.view
            busy = child.busy
            children.append(
                {
                    "name": child.name,
                    "role": child.role,
                    "subtype": child.subtype,
                    "slot": child.slot_no,
                    "pid": child.pid,
                    "state": child.status_state(),
                    "item": view.work_id if busy and view.state == SlotState.ITEM else None,
                    "split": view.work_id if busy and view.state == SlotState.SPLIT else None,
                    "since": wall - (now - view.started) if busy else None,
                    "restarts": child.restarts,
                    "items_done": view.done if view else 0,
                    "backoff_until": wall + child.next_start_at - now
                    if child.state is ChildState.BACKOFF
                    else None,
                }
            )
        return {
            "master": {
                "pid": self.pid,
                "host": self.host,
                "config": self.settings.path,
                "phase": self.phase.value,
                "started": wall - (now - self.started_at),
                "ready": self.ready_sent,
                "scale_delta": self.scale_delta,
            },
            "children": children,
            "written": wall,
        }


def preflight(
    settings: Settings,
    inbox: SignalInbox | None = None,
    lifeline: spawn.Lifeline | None = None,
    timeout: float = 60.0,
) -> str | None:
    """Import every handler in a throwaway child: the master itself never imports user code.

    Returns the one-line problem, or None when every handler loads.
    """
    from dlsupervisor import handlers

    read_fd, write_fd = os.pipe()

    def check() -> int:
        os.close(read_fd)
        problem = handlers.check_all(settings)
        os.write(write_fd, (problem or "").encode()[:4000])
        return EX_OK

    pid = spawn.fork_child(inbox, check, lifeline) if inbox else spawn.fork_plain(check)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while time.monotonic() < deadline:
            if select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(read_fd, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
        else:
            proctree.kill_tree(pid)
            chunks = [f"{settings.path}: importing the handlers took over {timeout:g}s".encode()]
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode() or None
