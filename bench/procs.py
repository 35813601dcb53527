"""Processes the benchmark starts: each in its own session, so stopping it leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


class BenchError(RuntimeError):
    """A measurement could not be taken (a wait ran out, a system did not start)."""


@dataclass
class Launched:
    name: str
    proc: subprocess.Popen
    log: Path
    started: float  # time.time() just before the launch

    @property
    def pid(self) -> int:
        return self.proc.pid


def launch(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Launched:
    """Start `argv` (a Python module run with this interpreter) in a new session, output to `log`."""
    environ = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    with open(log, "ab") as out:
        started = time.time()
        proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
            env=environ,
        )
    return Launched(name, proc, log, started)


def session_pids(sid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and os.getsid(proc.pid) == sid and proc.status() != "zombie":
                found.append(proc.pid)
    return found


def stop(launched: Launched, timeout: float = 15.0) -> list[int]:
    """SIGTERM the leader and wait; then SIGKILL what is left in its session.  Returns those pids."""
    if launched.proc.poll() is None:
        launched.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            launched.proc.wait(timeout)
    left = session_pids(launched.pid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        launched.proc.wait(5)
    return left


def wait_until(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.002) -> T:
    """probe()'s first truthy value; BenchError when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


def watch(probes: dict[str, Callable[[], float | None]], timeout: float, interval: float = 0.003) -> dict:
    """Poll every probe until each has returned a time (when its condition was first seen true).

    Polling them together keeps one slow condition from delaying the observation of another.
    """
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while True:
        for name, probe in probes.items():
            if name not in found:
                seen = probe()
                if seen is not None:
                    found[name] = seen
        if len(found) == len(probes):
            return found
        if time.monotonic() >= deadline:
            missing = ", ".join(sorted(set(probes) - set(found)))
            raise BenchError(f"{missing}: not within {timeout:g}s")
        time.sleep(interval)


def children(pid: int) -> list[int]:
    """Direct children, from /proc (cheap enough to poll every few milliseconds)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def title(pid: int) -> str:
    """The process title as `ps` shows it (setproctitle rewrites the argv area)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
