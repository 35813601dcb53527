"""A fake OS seam and clock for driving the master's loop in-process, no fork.

FakeOps stands in for master/ops.py's ProcessOps: fork hands out pids and runs
nothing, signals are recorded, and the test says when a "process" exits.
A child's slot is real shared memory; the test writes it as the child would.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from dlsupervisor.master.ops import CheckResult


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeCheck:
    """A handler check that never forks: `result` None while it "imports"."""

    pid: int
    result: CheckResult | None
    exited: bool = False
    closed: bool = False

    def poll(self, now: float) -> CheckResult | None:
        return self.result

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeOps:
    next_pid: int = 40000
    forked: list[int] = field(default_factory=list)
    sent: list[tuple[str, int, int]] = field(default_factory=list)  # (how, pid, signal)
    exits: list[tuple[int, int]] = field(default_factory=list)
    handler_problem: str | None = None
    handler_checks: int = 0
    hold_checks: bool = False  # checks stay pending until the test sets their result
    checks: list[FakeCheck] = field(default_factory=list)

    # -- the seam ----------------------------------------------------------------------

    def fork(self, main: Any) -> int:
        self.next_pid += 1
        self.forked.append(self.next_pid)
        return self.next_pid

    def reap(self, on_exit: Any) -> None:
        ended, self.exits = self.exits, []
        for pid, code in ended:
            on_exit(pid, code)

    def signal(self, pid: int, sig: int) -> None:
        self.sent.append(("pid", pid, sig))

    def signal_tree(self, pid: int, sig: int, known: list | None = None) -> list:
        self.sent.append(("tree", pid, sig))
        return list(known or [])

    def kill_leftovers(self, pid: int, tree: list) -> None:
        self.sent.append(("leftovers", pid, signal.SIGKILL))

    def check_handlers(self, settings: Any, now: float, timeout: float = 60.0) -> FakeCheck:
        self.handler_checks += 1
        self.next_pid += 1
        check = FakeCheck(self.next_pid, None if self.hold_checks else CheckResult(self.handler_problem))
        self.checks.append(check)
        return check

    # -- the test's side ---------------------------------------------------------------

    def exit(self, pid: int, code: int) -> None:
        """The process `pid` ended with `code` (negative: killed by that signal)."""
        self.exits.append((pid, code))

    def signals_to(self, pid: int) -> list[tuple[str, int]]:
        return [(how, sig) for how, p, sig in self.sent if p == pid]
