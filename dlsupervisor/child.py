"""One child of the master, as an explicit state machine (after supervisord's states).

    BACKOFF --due--> STARTING --slot says booted--> RUNNING
    RUNNING --soft stop (drain, retire, reload)--> STOPPING
    RUNNING | STOPPING --kill (timeout, cancel, hung, stop)--> KILLING
    KILLING --kill_grace passed--> KILLING (hard: SIGKILL to the tree)
    any live state --exit--> EXITED (dropped) or BACKOFF (restarted later)

Each transition is one method that checks where it starts from.  A child
signals its own process tree, through the OS seam it is handed (`Signals`),
so its escalation (soft stop, then SIGKILL after kill_grace) lives here.  Item
outcomes are not here: they belong to the store's conditional updates.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import psutil

from dlsupervisor.errors import CHILD_EXIT_NAMES, EX_OK, EX_RECYCLE
from dlsupervisor.slots import WORKING, Control, Slot, SlotState, SlotView

log = logging.getLogger("dlsupervisor.master")

BACKOFF_BASE = 0.5  # the delay after the second early death in a row; doubles after that


class ChildState(Enum):
    BACKOFF = "backoff"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    KILLING = "killing"
    EXITED = "exited"


class KillReason(Enum):
    """Why the master killed a child: it decides what the child's work is recorded as."""

    TIMEOUT = "timeout"  # recorded `timeout:` before the kill
    CANCEL = "cancel"  # recorded `cancelled` (or already settled) before the kill
    HUNG = "hung"  # an idle child stopped heartbeating
    STOP = "stop"  # the supervisor is stopping: the work goes back to READY
    DATABASE_UNREACHABLE = "database unreachable"  # fenced (fence.py): back to READY, like a stop


class TransitionError(RuntimeError):
    pass


class Signals(Protocol):
    """The part of the OS seam a child uses to signal itself and its tree."""

    def signal(self, pid: int, sig: int) -> None: ...

    def signal_tree(
        self, pid: int, sig: int, known: list[psutil.Process] | None = None
    ) -> list[psutil.Process]: ...


@dataclass
class Child:
    name: str  # "scheduler" or "SUBTYPE#NUMBER" (the title's SUBTYPE#SLOT)
    role: str  # "scheduler" or "worker"
    subtype: str | None
    number: int  # its place in the subtype's pool, from 1 (the status file's `slot`)
    conf: Any  # what this child was started with; a reload compares it
    state: ChildState = ChildState.BACKOFF
    pid: int | None = None
    slot: Slot | None = None
    view: SlotView | None = None
    killed_view: SlotView | None = None
    spawned_at: float = 0.0
    next_start_at: float = 0.0
    restarts: int = 0
    early_deaths: int = 0
    retiring: bool = False
    kill_reason: KillReason | None = None
    kill_deadline: float | None = None
    hard_killed: bool = False
    tree: list[psutil.Process] = field(default_factory=list)

    def _expect(self, *states: ChildState) -> None:
        if self.state not in states:
            wanted = "/".join(s.value for s in states)
            raise TransitionError(f"{self.name}: expected {wanted}, was {self.state.value}")

    # -- transitions -------------------------------------------------------------------

    def spawned(self, pid: int, slot: Slot, now: float) -> None:
        """BACKOFF → STARTING"""
        self._expect(ChildState.BACKOFF)
        self.pid, self.slot, self.spawned_at = pid, slot, now
        self.view = self.killed_view = None
        self.kill_reason, self.kill_deadline, self.hard_killed = None, None, False
        self.tree = []
        self.state = ChildState.STARTING
        log.info("spawned: %s pid %d", self.name, pid)

    def observe(self, view: SlotView | None) -> None:
        """STARTING → RUNNING once the child says it booted; keeps the latest view.

        None (a torn record) changes nothing: the last view stands.
        """
        if view is None:
            return
        self.view = view
        if self.state is ChildState.STARTING and view.state != SlotState.STARTING:
            self.state = ChildState.RUNNING

    def begin_stop(self, why: str) -> None:
        """STARTING | RUNNING → STOPPING: finish the current item, then exit."""
        self._expect(ChildState.STARTING, ChildState.RUNNING)
        self.state = ChildState.STOPPING
        log.info("stopping: %s pid %d (%s)", self.name, self.pid, why)

    def stop(self, ops: Signals, why: str) -> None:
        """STARTING | RUNNING → STOPPING, and tell the child (SIGTERM)."""
        self.begin_stop(why)
        ops.signal(self.pid, signal.SIGTERM)

    def begin_kill(self, reason: KillReason, now: float, grace: float) -> None:
        """STARTING | RUNNING | STOPPING → KILLING: soft stop now, SIGKILL at now + grace."""
        self._expect(ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING)
        self.state = ChildState.KILLING
        self.kill_reason = reason
        self.kill_deadline = now + grace
        log.warning("killing: %s pid %d (%s)", self.name, self.pid, reason.value)

    def kill(self, ops: Signals, reason: KillReason, now: float, grace: float) -> None:
        """Abort the work and stop the tree: SIGTERM now and SIGKILL after `grace` (0: at once)."""
        self.begin_kill(reason, now, grace)
        self.killed_view = self.view  # an aborted worker may write IDLE while unwinding
        self.slot.request(Control.ABORT)
        self.tree = ops.signal_tree(self.pid, signal.SIGKILL if grace == 0 else signal.SIGTERM)
        self.hard_killed = grace == 0

    def escalate(self, ops: Signals, now: float) -> None:
        """KILLING past its deadline → SIGKILL to the tree (the second strike), once."""
        if self.state is ChildState.KILLING and not self.hard_killed and now >= self.kill_deadline:
            self.kill_hard(ops)

    def kill_hard(self, ops: Signals) -> None:
        """SIGKILL the tree now, reaching what an earlier snapshot found too."""
        self.tree = ops.signal_tree(self.pid, signal.SIGKILL, self.tree)
        self.hard_killed = True

    def exited(self, status: int, now: float, min_uptime: float, max_backoff: float, expected: bool) -> None:
        """any live state → EXITED; then `schedule_restart` if the slot is still wanted."""
        self._expect(ChildState.STARTING, ChildState.RUNNING, ChildState.STOPPING, ChildState.KILLING)
        uptime = now - self.spawned_at
        described = self.describe_end(status)
        planned = expected or self.state in (ChildState.STOPPING, ChildState.KILLING) or _recycled(status)
        level = logging.INFO if planned else logging.ERROR
        hint = "; killed by the OOM killer?" if _signal_of(status) == signal.SIGKILL and not planned else ""
        log.log(
            level,
            "exited: %s pid %d (%s; %s)%s",
            self.name,
            self.pid,
            described,
            "expected" if planned else "not expected",
            hint,
        )
        if not planned and uptime < min_uptime:
            self.early_deaths += 1
        elif not planned or uptime >= min_uptime:
            self.early_deaths = 0
        self.state = ChildState.EXITED
        self.pid = None
        if self.slot is not None:
            self.slot.close()
            self.slot = None
        self.next_start_at = now + self.backoff_delay(max_backoff)

    def describe_end(self, status: int) -> str:
        """What happened, for the `exited:` line: a child asked to stop that did says `stopped`."""
        if self.state is ChildState.STOPPING and status in (EX_OK, EX_RECYCLE):
            return "stopped"
        return describe_exit(status)

    def schedule_restart(self, now: float) -> None:
        """EXITED → BACKOFF (due at once unless crash-looping)."""
        self._expect(ChildState.EXITED)
        self.state = ChildState.BACKOFF
        self.restarts += 1
        delay = self.next_start_at - now
        if delay > 0:
            log.error(
                "backoff: %s crash-looping (%d early exits); retry in %.1fs",
                self.name,
                self.early_deaths,
                delay,
            )

    def backoff_delay(self, max_backoff: float) -> float:
        """At once for a first early death, then 0.5 s doubling up to max_backoff."""
        if self.early_deaths < 2:
            return 0.0
        return min(max_backoff, BACKOFF_BASE * 2 ** (self.early_deaths - 2))

    # -- what it is doing ------------------------------------------------------------

    def held(self) -> SlotView | None:
        """The work it held: as when it was killed, else as last seen; None if idle."""
        view = self.killed_view or self.view
        return view if view is not None and view.state in WORKING else None

    @property
    def live(self) -> bool:
        return self.pid is not None

    @property
    def busy(self) -> bool:
        return self.view is not None and self.view.state in WORKING

    @property
    def idle(self) -> bool:
        return self.view is not None and self.view.state == SlotState.IDLE

    def status_state(self) -> str:
        """`idle`, `busy`, `stopping`, `backoff` (contract.md §3), or `starting`."""
        if self.state is ChildState.BACKOFF:
            return "backoff"
        if self.state in (ChildState.STOPPING, ChildState.KILLING):
            return "stopping"
        if self.busy:
            return "busy"
        if self.state is ChildState.RUNNING:
            return "idle"
        return "starting"


def _signal_of(status: int) -> int | None:
    return -status if status < 0 else None


def _recycled(status: int) -> bool:
    return status == EX_RECYCLE


def describe_exit(status: int) -> str:
    """`signal SIGSEGV` or `exit code 3 (recycled)`; status as from os.waitstatus_to_exitcode."""
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    name = CHILD_EXIT_NAMES.get(status)
    return f"exit code {status}" + (f" ({name})" if name else "")
