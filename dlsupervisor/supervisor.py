"""The master: forks the scheduler and the workers, and keeps them as configured.

Its loop (after gunicorn's arbiter) waits on the signal inbox until the next
step is due (a timeout's deadline, a kill, a restart, a check of held items;
at most IDLE_TICK), then runs a fixed sequence of level-triggered steps, each
comparing what is with what should be: handle signals, reap exits, read the
children's slots, enforce deadlines (timeouts, cancels, kills), sync with the
database (outcomes, heartbeats), fence the exports when the database stopped
answering (fence.py), reconcile the children with the configuration, write the
status file.  A child's exit wakes it at once
(SIGCHLD).  Nothing in it blocks for long, and it never imports or runs user
code (architecture.md, invariant 3) -- except in standalone mode (standalone.py), where
the calling process is a user's script that already built its handler and
hands the instance in, for its workers to inherit.

The steps' pieces live in dlsupervisor.master; every OS call goes through
`self.ops` (master/ops.py), so unit tests drive this loop with a fake clock.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING

import setproctitle

from dlsupervisor import config, fence, logsetup, remarks, spawn, statusfile, systemd
from dlsupervisor.child import Child, ChildState, KillReason, describe_exit
from dlsupervisor.config import Settings
from dlsupervisor.errors import EX_FAILURE, EX_OK, ConfigError
from dlsupervisor.fence import FENCED
from dlsupervisor.master import deadlines, pool, reload, status
from dlsupervisor.master.database import Ending, EndingKind, MasterDatabase, Work
from dlsupervisor.master.ops import ProcessOps, preflight
from dlsupervisor.master.progress import ProgressWriter
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.signals import SignalInbox
from dlsupervisor.slots import Slot, SlotState
from dlsupervisor.statusfile import MasterStatus
from dlsupervisor.toolkit import tempdir

if TYPE_CHECKING:
    from dlsupervisor.task import DownloadTaskBase

__all__ = ["Master", "Phase", "preflight"]

log = logging.getLogger("dlsupervisor.master")

TICK = 0.1  # seconds between passes while draining or stopping, or retrying a database write
IDLE_TICK = 0.5  # the longest the loop sleeps (it also notices a worker going busy by then)
HELD_CHECK_EVERY = 0.5  # seconds between checks that held items are still ours (cancel)
READY_AFTER = 5.0  # send READY=1 after this long even if some child is still booting
HEARTBEAT_EVERY = 5.0  # seconds between heartbeats, unless a quarter of the lease is less
EXIT_GRACE = 5.0  # seconds a stopping master keeps trying to record what its children held


class Phase(Enum):
    RUNNING = "running"
    DRAINING = "draining"  # SIGTERM: in-flight items may finish until stop_timeout
    STOPPING = "stopping"  # SIGQUIT, or a second Ctrl-C: everything killed now
    EXITED = "exited"


class Master:
    """The loop and its steps; what each step decides lives in dlsupervisor.master."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        handlers: Mapping[str, DownloadTaskBase] | None = None,
        scheduler: bool = True,
        ops: ProcessOps | None = None,
    ) -> None:
        """`handlers` (subtype name -> instance) and `scheduler=False` are standalone mode's;
        `ops` is the OS seam (a fake one in unit tests)."""
        self.settings = settings
        self.clock = clock
        self.handlers = dict(handlers or {})
        self.run_scheduler = scheduler
        self.inbox = SignalInbox()
        self.lifeline = spawn.Lifeline()
        self.ops = ops or ProcessOps(self.inbox, self.lifeline)
        self.pool = pool.Pool()
        self.db = MasterDatabase(settings.database, clock, settings.scheduler.lease)
        self.phase = Phase.RUNNING
        self.scale_delta = 0
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = 0.0
        self.ready_sent = False
        self.drain_deadline: float | None = None
        self.exit_grace_until: float | None = None
        self.next_held_check = 0.0
        self.next_heartbeat = 0.0
        self.progress = ProgressWriter()
        self.next_status = 0.0
        self.status_written: tuple | None = None
        self.status_path = os.path.join(settings.supervisor.run_dir, "status.json")
        self.reloading: reload.PendingReload | None = None

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
        self.begin(self.clock())
        self.preload()
        log.info("master: started (pid %d, config %s)", self.pid, self.settings.path)

    def begin(self, now: float) -> None:
        """The loop's clock starts: READY_AFTER and the first status count from here."""
        self.started_at = now

    def preload(self) -> None:
        """Import the backends every child uses (never user code), so each fork inherits them.

        The store connects on first use, so no connection is shared with a child.  Shared
        pages stay shared only while no process writes to them: freezing what is loaded
        keeps the children's garbage collections from touching those objects (which would
        copy every page they sit on into each child); bench/README.md, "Idle memory".
        """
        self.db.open()
        if self.settings.redis is not None:
            import dlsupervisor.queue.redis  # noqa: F401
        import dlsupervisor.scheduler  # noqa: F401

        gc.collect()
        gc.freeze()

    def next_wait(self, now: float) -> float:
        """Seconds until a step is due; the loop sleeps that long unless a signal comes first."""
        due = [now + self.idle_tick(), self.next_status]
        if self.phase is not Phase.RUNNING or self.db.pending or self.reloading:
            due.append(now + TICK)
        if not self.ready_sent:
            due.append(self.started_at + READY_AFTER)
        for child in self.pool:
            at = deadlines.next_due(self.settings, child, now)
            if at is not None:
                due.append(at)
        held = [c for c in self.pool if c.busy and c.state in (ChildState.RUNNING, ChildState.STOPPING)]
        if held:
            due += [self.next_held_check, self.next_heartbeat]
        lease = self.settings.scheduler.lease
        due += [self.db.fence.deadline(c.view.started, lease) for c in held]
        return max(0.0, min(due) - now)

    @property
    def heartbeat_every(self) -> float:
        """Seconds between heartbeats of held work: well inside the (current) lease."""
        return min(HEARTBEAT_EVERY, self.settings.scheduler.lease / 4)

    def idle_tick(self) -> float:
        """IDLE_TICK, or less when a timeout or heartbeat_timeout is short: a quarter of it."""
        limits = [sub.timeout for sub in self.settings.subtypes if sub.timeout]
        limits.append(self.settings.supervisor.heartbeat_timeout)
        return min(IDLE_TICK, *(limit / 4 for limit in limits))

    def tick(self, now: float) -> None:
        self.reap(now)
        self.advance_reload(now)
        self.read_slots()
        self.enforce_deadlines(now)
        self.sync_database(now)
        self.enforce_fence(self.clock())  # a database call may have taken a while
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
            self.scale(+1 if signum == signal.SIGTTIN else -1, signal.Signals(signum).name)

    def scale(self, step: int, why: str) -> None:
        self.scale_delta += step
        log.info("master: %s: worker count %+d per subtype until the next reload", why, self.scale_delta)

    def reload(self, now: float) -> None:
        """SIGHUP: parse the file now; check its handlers in a child the loop polls."""
        if self.reloading is not None:
            self.reloading.again = True  # check the file again once this check is done
            return
        systemd.reloading()
        try:
            new = config.load(self.settings.path)
        except ConfigError as exc:
            self.reload_failed(exc)
            return
        moved = reload.moved_servers(self.settings, new)
        if moved:
            log.error("reload refused, configuration unchanged: %s changed; restart to apply it", moved)
            systemd.notify("READY=1")
            return
        self.reloading = reload.PendingReload(new, self.ops.check_handlers(new, now))

    def advance_reload(self, now: float) -> None:
        """Once the handler check has its verdict: apply the diff, or change nothing (contract.md §2)."""
        pending = self.reloading
        result = pending.check.poll(now) if pending is not None else None
        if result is None:
            return
        self.reloading = None
        if result.problem:
            self.reload_failed(result.problem)
        else:
            self.apply_reload(pending.settings)
        if pending.again:
            self.reload(now)

    def reload_failed(self, problem: object) -> None:
        log.error("reload failed, configuration unchanged: %s", problem)
        systemd.notify("READY=1")

    def apply_reload(self, new: Settings) -> None:
        leaving = reload.retirements(self.pool, new)
        self.settings = new
        self.db.lease = new.scheduler.lease
        self.scale_delta = 0
        logsetup.configure(new.supervisor.log_level, new.supervisor.log_file, "master")
        for child, why in leaving:
            self.retire(child, why)
        log.info("master: reloaded %s", new.path)
        systemd.notify("READY=1")

    def cancel_reload(self) -> None:
        """Stopping: a reload still checking its handlers is dropped."""
        if self.reloading is not None:
            self.reloading.check.close()
            self.reloading = None

    def signal_children(self, signum: int) -> None:
        for child in self.pool:
            if child.live:
                self.ops.signal(child.pid, signum)

    # -- reaping -----------------------------------------------------------------------

    def reap(self, now: float) -> None:
        self.ops.reap(lambda pid, code: self.on_reaped(pid, code, now))

    def on_reaped(self, pid: int, code: int, now: float) -> None:
        """A child ended; it is reaped only after this returns (its pid is still ours)."""
        child = self.pool.by_pid(pid)
        if child is not None:
            self.on_exit(child, code, now)
        elif self.reloading is not None and pid == self.reloading.check.pid:
            self.reloading.check.exited = True

    def on_exit(self, child: Child, code: int, now: float) -> None:
        if child.slot is not None:
            child.observe(child.slot.read())
        work = Work.held_by(child, self.host)
        ending = self.exit_ending(child.kill_reason, code)
        if work is not None and ending is not None:
            self.db.settle(work, ending)
        # Leave no grandchild behind, however the child ended: what is left of its process
        # group, and what a kill's snapshot found outside it -- before it is reaped.
        self.ops.kill_leftovers(child.pid, child.tree)
        tempdir.remove_worker_dir(self.settings.storage, child.pid)  # what a killed export left
        expected = child.retiring or self.phase is not Phase.RUNNING
        conf = self.settings.supervisor
        child.exited(code, now, conf.min_uptime, conf.max_backoff, expected)
        if expected:
            self.pool.drop(child)
        else:
            child.schedule_restart(now)

    @staticmethod
    def exit_ending(reason: KillReason | None, code: int) -> Ending | None:
        """What a child's exit makes of the work it held; None: recorded before the kill."""
        if reason in (KillReason.TIMEOUT, KillReason.CANCEL):
            return None
        if reason is KillReason.STOP:
            return Ending.requeued("supervisor stopped")
        if reason is KillReason.DATABASE_UNREACHABLE:
            return Ending.requeued(FENCED)  # conditional on the token: nothing if taken over
        return Ending.failed(f"{remarks.WORKER_DIED} {describe_exit(code)}")

    # -- deadlines ---------------------------------------------------------------------

    def read_slots(self) -> None:
        for child in self.pool:
            if child.slot is not None:
                child.observe(child.slot.read())

    def enforce_deadlines(self, now: float) -> None:
        drain_deadline = self.drain_deadline if self.phase is Phase.DRAINING else None
        for child in self.pool:
            if not child.live:
                continue
            if child.state is ChildState.KILLING:
                child.escalate(self.ops, now)
                continue
            reason = deadlines.overdue(self.settings, child, now, drain_deadline)
            if reason is KillReason.TIMEOUT:
                self.kill_for_timeout(child, now)
            elif reason is not None:
                self.kill(child, reason, now)

    def kill_for_timeout(self, child: Child, now: float) -> None:
        """Record the outcome first, then kill: a late result then matches nothing."""
        limit = self.settings.subtype(child.subtype).timeout
        remark = f"{remarks.TIMEOUT} ran longer than {limit:g}s; process tree killed"
        self.db.settle(Work.held_by(child, self.host), Ending.failed(remark))
        self.kill(child, KillReason.TIMEOUT, now)

    def kill(self, child: Child, reason: KillReason, now: float, grace: float | None = None) -> None:
        """Abort the child's work and stop its tree: SIGTERM now, SIGKILL after `grace`
        (kill_grace unless given; none when stopping fast)."""
        if grace is None:
            grace = self.settings.supervisor.kill_grace
        child.kill(self.ops, reason, now, 0.0 if self.phase is Phase.STOPPING else grace)

    # -- the database ------------------------------------------------------------------

    def sync_database(self, now: float) -> None:
        self.db.flush()
        busy = self.pool.busy()
        if busy and now >= self.next_held_check:
            self.next_held_check = now + HELD_CHECK_EVERY
            self.check_held(busy, now)
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.heartbeat_every
            items = [c.view.work_id for c in busy if c.view.state == SlotState.ITEM]
            tasks = [c.view.work_id for c in busy if c.view.state == SlotState.SPLIT]
            if not self.db.heartbeat(items, tasks):
                self.next_heartbeat = max(self.db.retry_at, now + TICK)  # retry before the fence
        self.progress.step(busy, now, self.db.write_progress)

    def check_held(self, busy: list[Child], now: float) -> None:
        """Kill exports whose item was cancelled, or taken from us, within HELD_CHECK_EVERY."""
        items = {c.view.work_id: c for c in busy if c.view.state == SlotState.ITEM}
        states = self.db.held_states(list(items))
        for item_id, (item_status, remark, task_status) in (states or {}).items():
            child = items[item_id]
            if child.state is ChildState.KILLING or child.view.work_id != item_id:
                continue
            work = Work.held_by(child, self.host)
            ours = item_status == ItemStatus.PROCESSING and remark == work.token
            if ours and task_status != TaskStatus.CANCELLED:
                continue
            if ours:
                self.db.settle(work, Ending(EndingKind.CANCELLED))
            elif item_status not in (ItemStatus.READY, ItemStatus.CANCELLED, ItemStatus.PROCESSING):
                continue  # the worker recorded its outcome; its slot will say so next tick
            self.kill(child, KillReason.CANCEL, now)

    def enforce_fence(self, now: float) -> None:
        """Stop every export whose lease the database has not renewed for half of it: past
        the other half another supervisor may take it over (architecture.md, invariant 5)."""
        lease = self.settings.scheduler.lease
        due = [
            c
            for c in self.pool
            if c.live
            and c.busy
            and c.state in (ChildState.RUNNING, ChildState.STOPPING)
            and self.db.fence.due(c.view.started, lease, now)
        ]
        if not due:
            return
        log.error(
            "fence: database unreachable: no heartbeat answered for %.1fs (the lease is %gs); "
            "stopping %d exports (%s) before another supervisor may take them over",
            now - max(self.db.fence.last_ok, min(c.view.started for c in due)),
            lease,
            len(due),
            ", ".join(f"{c.view.state.name.lower()} {c.view.work_id}" for c in due),
        )
        self.db.fence.fenced(now)
        grace = fence.kill_grace(lease, self.settings.supervisor.kill_grace)
        for child in due:
            self.kill(child, KillReason.DATABASE_UNREACHABLE, now, grace)

    # -- reconcile ---------------------------------------------------------------------

    def wanted(self) -> dict[str | None, int]:
        """How many children each role should have: None is the scheduler."""
        return pool.wanted(self.settings, self.scale_delta, self.run_scheduler)

    def reconcile(self, now: float) -> None:
        if self.phase is not Phase.RUNNING:
            return
        counts = self.wanted()
        for child, why in self.pool.surplus(counts):
            self.retire(child, why)
        for role, number in self.pool.missing(counts):
            self.pool.add(pool.new_child(self.settings, role, number, now))
        for child in self.pool.due(now):
            self.spawn(child, now)

    def spawn(self, child: Child, now: float) -> None:
        slot = Slot(now)  # the master's clock: a child that never beats is judged on it
        lifeline = self.lifeline.read_fd
        if child.role == "web":
            main = partial(spawn.web_main, self.settings, slot, self.pid, lifeline)
        elif child.subtype is None:
            main = partial(spawn.scheduler_main, self.settings, slot, self.pid, lifeline)
        else:
            main = partial(
                spawn.worker_main,
                self.settings,
                self.settings.subtype(child.subtype),
                child.number,
                slot,
                self.pid,
                self.host,
                lifeline,
                self.handlers.get(child.subtype),
            )
        child.spawned(self.ops.fork(main), slot, now)

    def retire(self, child: Child, why: str) -> None:
        """Let it finish its current item, then go; a child not running yet just goes."""
        child.retiring = True
        if child.state in (ChildState.STARTING, ChildState.RUNNING):
            child.stop(self.ops, why)
        elif child.state is ChildState.BACKOFF:
            self.pool.drop(child)

    # -- stopping ----------------------------------------------------------------------

    def begin_drain(self, now: float, why: str) -> None:
        stop_timeout = self.settings.supervisor.stop_timeout
        log.info("master: %s: draining; in-flight exports have %gs to finish", why, stop_timeout)
        systemd.notify("STOPPING=1")
        self.cancel_reload()
        self.phase = Phase.DRAINING
        self.drain_deadline = now + stop_timeout
        for child in self.pool:
            if child.state in (ChildState.STARTING, ChildState.RUNNING):
                child.stop(self.ops, "supervisor stopping")
            elif child.state is ChildState.BACKOFF:
                self.pool.drop(child)

    def begin_fast_stop(self, now: float, why: str) -> None:
        log.warning("master: %s: stopping now; in-flight items go back to READY", why)
        systemd.notify("STOPPING=1")
        self.cancel_reload()
        self.phase = Phase.STOPPING
        for child in self.pool:
            if child.live and child.state is not ChildState.KILLING:
                self.kill(child, KillReason.STOP, now)
            elif child.live and not child.hard_killed:
                child.kill_hard(self.ops)
            elif not child.live:
                self.pool.drop(child)

    def advance_phase(self, now: float) -> None:
        if self.phase is Phase.RUNNING:
            if not self.ready_sent and (self.pool.all_booted() or now - self.started_at > READY_AFTER):
                self.ready_sent = True
                systemd.notify("READY=1", f"STATUS=supervising {len(self.pool)} children")
                log.info("master: ready (%d children)", len(self.pool))
        elif not any(child.live for child in self.pool):
            if self.exit_grace_until is None:
                self.exit_grace_until = now + EXIT_GRACE  # a few ticks to record what they held
            if not self.db.pending or now >= self.exit_grace_until:
                if self.db.pending:
                    log.error(
                        "master: %d outcomes not recorded (database unreachable); "
                        "their items are recovered after the lease",
                        len(self.db.pending),
                    )
                self.phase = Phase.EXITED

    def emergency_stop(self) -> None:
        self.cancel_reload()
        for child in self.pool:
            if child.live:
                child.kill_hard(self.ops)

    def finish(self) -> None:
        self.db.close()
        try:
            os.unlink(self.status_path)
        except OSError:
            pass

    # -- status ------------------------------------------------------------------------

    def write_status(self, now: float) -> None:
        """At once when a child's state changed, else every STATUS_EVERY."""
        signature = status.signature(self.pool, self.phase, self.ready_sent, self.scale_delta)
        if now < self.next_status and signature == self.status_written:
            return
        self.next_status = now + status.STATUS_EVERY
        self.status_written = signature
        wall = time.time()
        statusfile.write(self.status_path, status.build(self.master_status(now, wall), self.pool, now, wall))

    def master_status(self, now: float, wall: float) -> MasterStatus:
        return MasterStatus(
            pid=self.pid,
            host=self.host,
            config=self.settings.path,
            phase=self.phase.value,
            started=wall - (now - self.started_at),
            ready=self.ready_sent,
            scale_delta=self.scale_delta,
        )
