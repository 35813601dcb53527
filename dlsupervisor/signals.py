"""The master's signal inbox: handlers only record; the loop acts (architecture.md, habit 1).

`signal.set_wakeup_fd` writes the signal number to a non-blocking pipe, which
wakes the loop's `select` at once; handlers do nothing but let that happen.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterator

HANDLED = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


def _record(signum: int, frame: object) -> None:
    """Nothing to do: the interpreter has already written signum to the wakeup fd."""


class SignalInbox:
    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        for fd in (self._read_fd, self._write_fd):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self._previous_fd = -1
        self._previous_handlers: dict[int, object] = {}

    def install(self) -> None:
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in HANDLED:
            self._previous_handlers[signum] = signal.signal(signum, _record)

    def uninstall(self) -> None:
        """Put back what install() replaced and close the pipe.

        For a master that returns to its caller instead of exiting: standalone
        mode, where the caller is a user's script that may go on running.
        """
        for signum, previous in self._previous_handlers.items():
            # None: the handler was not set from Python, so cannot be put back.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def wait(self, timeout: float) -> list[int]:
        """Signals received, oldest first, waiting up to `timeout` for the first one."""
        readable, _, _ = select.select([self._read_fd], [], [], max(timeout, 0))
        if not readable:
            return []
        received = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._read_fd, 512):
                received += chunk
        return list(received)

    def close_in_child(self) -> None:
        """In a freshly forked child: default handlers, no wakeup fd, no inherited pipe."""
        signal.set_wakeup_fd(-1)
        for signum in HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        os.close(self._read_fd)
        os.close(self._write_fd)


@contextlib.contextmanager
def blocked(signals: tuple[int, ...] = HANDLED) -> Iterator[None]:
    """Block signals around fork so no handler runs in the child before it resets them."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
