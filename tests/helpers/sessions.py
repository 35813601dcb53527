"""The processes a test started, found by session: the net no grandchild escapes but setsid."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`, other than this test."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if proc.pid != os.getpid() and os.getsid(proc.pid) == sid and proc.status() != "zombie":
                found.append(proc.pid)
    return found


def kill_session(sid: int) -> list[int]:
    """SIGKILL what is left of session `sid`; returns what was left."""
    left = session_pids(sid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left
