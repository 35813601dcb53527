"""The master's OS seam: every fork, signal and wait it makes goes through one object.

The master is handed a `ProcessOps`; unit tests hand it a fake one that forks
nothing, so the loop's decisions run under a fake clock in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from dlsupervisor import proctree, spawn
from dlsupervisor.config import Settings
from dlsupervisor.errors import EX_OK
from dlsupervisor.signals import SignalInbox


class ProcessOps:
    """The real thing: os.fork (through spawn.py), os.kill, waitpid, psutil."""

    def __init__(self, inbox: SignalInbox, lifeline: spawn.Lifeline) -> None:
        self.inbox = inbox
        self.lifeline = lifeline

    def fork(self, main: Callable[[], int]) -> int:
        """A child running `main`; its pid."""
        return spawn.fork_child(self.inbox, main, self.lifeline)

    def reap(self, on_exit: Callable[[int, int], None]) -> None:
        """For each child that ended: `on_exit(pid, status)`, then reap it.

        `on_exit` runs while the child is still a zombie, so its pid and its process
        group cannot have been reused: what it signals is that child's and nobody
        else's.  Status as os.waitstatus_to_exitcode gives it (negative: a signal).
        """
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            try:
                on_exit(info.si_pid, exit_status(info))
            finally:
                os.waitpid(info.si_pid, 0)

    def signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def signal_tree(
        self, pid: int, sig: int, known: list[psutil.Process] | None = None
    ) -> list[psutil.Process]:
        return proctree.signal_tree(pid, sig, known)

    def kill_leftovers(self, pid: int, tree: list[psutil.Process]) -> None:
        """After a child exited, before it is reaped: what is left of its group, and of a
        kill's snapshot."""
        proctree.kill_tree(pid, proctree.alive(tree))

    def check_handlers(self, settings: Settings, now: float, timeout: float = 60.0) -> HandlerCheck:
        """Start importing every handler in a throwaway child (never in the master)."""
        return HandlerCheck.start(settings, self.fork, timeout, now)


def exit_status(info: os.waitid_result) -> int:
    """waitid's record as a status: the exit code, or minus the signal that ended it."""
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


ANSWERED = b"\x00"  # the check child's first byte: it ran to the end (a problem may follow)


@dataclass(frozen=True)
class CheckResult:
    problem: str | None  # one line, or None when every handler loads


class HandlerCheck:
    """A throwaway child importing every handler, polled by the loop so it never waits on it.

    The master itself never imports user code; a slow import costs the loop nothing.
    The child's pid is reaped by whoever reaps the master's children (`exited` says so).
    """

    def __init__(self, settings: Settings, pid: int, read_fd: int, timeout: float, now: float) -> None:
        self.settings = settings
        self.pid = pid
        self.timeout = timeout
        self.deadline = now + timeout
        self.exited = False
        self._read_fd: int | None = read_fd
        self._chunks: list[bytes] = []
        self._result: CheckResult | None = None

    @classmethod
    def start(
        cls, settings: Settings, fork: Callable[[Callable[[], int]], int], timeout: float, now: float
    ) -> HandlerCheck:
        read_fd, write_fd = os.pipe()

        def check() -> int:
            from dlsupervisor import handlers  # in the child only

            os.close(read_fd)
            problem = handlers.check_all(settings)
            os.write(write_fd, ANSWERED + (problem or "").encode()[:4000])
            return EX_OK

        pid = fork(check)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return cls(settings, pid, read_fd, timeout, now)

    def fileno(self) -> int | None:
        return self._read_fd

    def poll(self, now: float) -> CheckResult | None:
        """The verdict once there is one; None while the child is still importing."""
        if self._result is not None or self._read_fd is None:
            return self._result
        while True:
            try:
                chunk = os.read(self._read_fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                return self._finish(self._answer())
            self._chunks.append(chunk)
        if now >= self.deadline:
            self.cancel()
            return self._finish(f"{self.settings.path}: importing the handlers took over {self.timeout:g}s")
        return None

    def cancel(self) -> None:
        """Kill the child if it is still running (never once reaped: its pid may be reused)."""
        if not self.exited:
            proctree.kill_tree(self.pid)

    def close(self) -> None:
        if self._result is None:
            self.cancel()
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None

    def _answer(self) -> str | None:
        """The child's problem line; a child that ended without answering is a problem too."""
        received = b"".join(self._chunks)
        if not received.startswith(ANSWERED):
            return f"{self.settings.path}: the handler check ended without an answer (see the log)"
        return received[len(ANSWERED) :].decode(errors="replace") or None

    def _finish(self, problem: str | None) -> CheckResult:
        self._result = CheckResult(problem)
        self.close()
        return self._result


def preflight(settings: Settings, timeout: float = 60.0) -> str | None:
    """Before a master starts: import every handler in a throwaway child, and wait for it.

    Returns the one-line problem, or None when every handler loads.
    """
    check = HandlerCheck.start(settings, spawn.fork_plain, timeout, time.monotonic())
    try:
        while (result := check.poll(time.monotonic())) is None:
            select.select([check.fileno()], [], [], max(0.0, check.deadline - time.monotonic()))
    finally:
        check.close()
        os.waitpid(check.pid, 0)
    return result.problem
