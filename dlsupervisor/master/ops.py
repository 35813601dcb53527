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

    def check_handlers(self, settings: Settings, timeout: float = 60.0) -> str | None:
        """Import every handler in a throwaway child (never in the master): the problem, or None."""
        return preflight(settings, self.inbox, self.lifeline, timeout)


def exit_status(info: os.waitid_result) -> int:
    """waitid's record as a status: the exit code, or minus the signal that ended it."""
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


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
