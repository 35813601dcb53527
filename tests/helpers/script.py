"""A user's script (`python FILE` in a working directory) in its own session: started,
signalled as a terminal would, observed through its log and process titles, and torn
down by session so nothing it started survives the test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers.daemon import REPO, title
from tests.helpers.sessions import kill_session, session_pids
from tests.helpers.wait import wait_until

# `python -c` this, then the script: exec keeps the pid and a signal at its default.
DEFAULT_HUP_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Script:
    def __init__(
        self, path: Path, cwd: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        self.path = path
        self.cwd = cwd
        self.env = env or {}
        self.prefix = prefix  # e.g. ("nohup",)
        self.log_path = cwd / f"{path.stem}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Script:
        environ = dict(os.environ, PYTHONPATH=str(REPO), **self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, str(self.path)] if self.prefix else self._as_from_a_terminal(),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=environ,
            )
        return self

    def _as_from_a_terminal(self) -> list[str]:
        """The script with SIGHUP at its default, as a shell in a terminal starts it, even when
        this suite runs under nohup (whose ignored SIGHUP every child would inherit)."""
        return [sys.executable, "-c", DEFAULT_HUP_THEN_EXEC, str(self.path)]

    # -- signals, as an operator or a terminal sends them -------------------------------

    def ctrl_c(self) -> None:
        """SIGINT to the foreground process group, as a terminal's Ctrl-C does."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.path.name} did not exit in {timeout}s\n{self.log_tail()}") from None

    def close(self) -> list[int]:
        """SIGTERM and wait; SIGKILL what is left of the session.  Returns the leftovers."""
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        left = kill_session(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return left

    # -- observation -------------------------------------------------------------------

    def session(self) -> list[int]:
        return session_pids(self.proc.pid)

    def titles(self) -> dict[int, str]:
        return {pid: title(pid) for pid in self.session()}

    def worker(self, suffix: str, timeout: float = 15.0) -> int:
        """The pid of the worker whose title ends with `suffix` (e.g. "DemoTask#1 idle")."""

        def probe():
            return next((pid for pid, t in self.titles().items() if t.endswith(f"worker {suffix}")), None)

        return wait_until(probe, timeout=timeout, what=f"worker {suffix}", context=self.context)

    def busy_with(self, item_id: int, timeout: float = 15.0) -> int:
        """The pid of whichever worker is exporting item `item_id`."""

        def probe():
            return next((pid for pid, t in self.titles().items() if t.endswith(f" item {item_id}")), None)

        return wait_until(probe, timeout=timeout, what=f"a worker busy with {item_id}", context=self.context)

    def wait_log(self, text: str, timeout: float = 15.0) -> None:
        def probe():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.path.name} exited ({self.proc.returncode})\n{self.log_tail()}")
            return text in self.log_tail(1000)

        wait_until(probe, timeout=timeout, what=f"{text!r} in the log", context=self.context)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def context(self) -> str:
        return f"--- {self.path.name} titles: {self.titles()}\n--- log ---\n{self.log_tail()}"
