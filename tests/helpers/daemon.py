"""The real daemon in its own session, observed through its status file, NOTIFY_SOCKET and
the tables; torn down by session so no process it started survives the test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from dlsupervisor import statusfile
from tests.helpers.env import config_text
from tests.helpers.sessions import kill_session, session_pids
from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


class Daemon:
    """One supervisor; `name` gives it its own config file and run_dir beside the env's."""

    def __init__(self, env, name: str | None = None, *, db_url: str | None = None, **config: Any) -> None:
        """`db_url` reaches the env's database some other way (through a proxy, say)."""
        self.env = env
        self.db_url = db_url or env.db_url
        self.config = config
        self.config_path = env.config_path if name is None else env.tmp / f"{name}.ini"
        self.run_dir = env.run_dir if name is None else env.tmp / f"run-{name}"
        self.proc: subprocess.Popen | None = None
        self.sid: int | None = None
        self.log_path = env.tmp / f"{name or 'daemon'}.log"
        self._sock_dir = tempfile.mkdtemp(prefix="dln")
        self.notify_path = os.path.join(self._sock_dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.messages: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------

    def rewrite(self, **config: Any) -> None:
        """Replace this daemon's configuration file (for reloads)."""
        self.config = config
        keys = getattr(self.env, "redis_keys", None)
        driver = getattr(self.env, "driver", "")
        text = config_text(
            self.db_url,
            self.env.redis_url,
            self.env.prefix,
            self.run_dir,
            redis_keys=keys,
            driver=driver,
            **config,
        )
        self.config_path.write_text(text)

    def start(self, *, wait_ready: bool = True, extra_args: tuple[str, ...] = ()) -> Daemon:
        self.rewrite(**self.config)
        environ = dict(os.environ, NOTIFY_SOCKET=self.notify_path, PYTHONPATH=str(REPO))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dlsupervisor", "start", "-c", str(self.config_path), *extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=environ,
                cwd=REPO,
            )
        self.sid = self.proc.pid
        if wait_ready:
            self.wait_notify("READY=1")
        return self

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "dlsupervisor", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            cwd=REPO,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the master did not exit in {timeout}s\n{self.log_tail()}") from None

    def stop(self) -> None:
        """SIGTERM, wait; then SIGKILL whatever is left in the session."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.kill_session()

    def session_pids(self) -> list[int]:
        return session_pids(self.sid)

    def kill_session(self) -> list[int]:
        if self.sid is None:
            return []
        left = kill_session(self.sid)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        return left

    def close(self) -> list[int]:
        """Tear down; returns the pids that were still alive after a normal stop."""
        try:
            self.stop()
            return self.kill_session()
        finally:
            self.notify.close()
            shutil.rmtree(self._sock_dir, ignore_errors=True)

    # -- observation -------------------------------------------------------------------

    def wait_notify(self, message: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while message not in self.messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {message} in {timeout}s; got {self.messages}\n{self.log_tail()}")
            self.notify.settimeout(min(remaining, 0.5))
            with contextlib.suppress(TimeoutError):
                data = self.notify.recv(4096).decode()
                self.messages += data.splitlines()
            if self.proc.poll() is not None and message not in self.messages:
                raise AssertionError(
                    f"master exited ({self.proc.returncode}) before {message}\n{self.log_tail()}"
                )

    def status(self) -> dict[str, Any] | None:
        return statusfile.read(str(self.run_dir / "status.json"))

    def children(self) -> dict[str, dict[str, Any]]:
        status = self.status() or {"children": []}
        return {c["name"]: c for c in status["children"] if c["state"] != "stopping"}

    def child(self, name: str) -> dict[str, Any]:
        return self.children().get(name, {})

    def wait_child(self, name: str, timeout: float = 10.0, **expected: Any) -> dict[str, Any]:
        def probe():
            child = self.child(name)
            return child if child and all(child.get(k) == v for k, v in expected.items()) else None

        return wait_until(probe, timeout=timeout, what=f"{name} with {expected}", context=self.context)

    def wait_item(self, item_id: int, timeout: float = 10.0, **expected: Any) -> dict[str, Any]:
        def probe():
            row = self.env.db.item(item_id)
            return row if all(row[k] == v for k, v in expected.items()) else None

        return wait_until(
            probe, timeout=timeout, what=f"item {item_id} with {expected}", context=self.context
        )

    def wait_task(self, task_id: int, timeout: float = 10.0, **expected: Any) -> dict[str, Any]:
        def probe():
            row = self.env.db.task(task_id)
            return row if all(row[k] == v for k, v in expected.items()) else None

        return wait_until(
            probe, timeout=timeout, what=f"task {task_id} with {expected}", context=self.context
        )

    def log_tail(self, lines: int = 100) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def context(self) -> str:
        return f"status: {self.status()}\n--- log ---\n{self.log_tail()}"


def title(pid: int) -> str:
    """The process title as `ps` shows it (setproctitle pads the original argv area)."""
    try:
        return " ".join(psutil.Process(pid).cmdline()).strip()
    except psutil.Error:
        return ""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
