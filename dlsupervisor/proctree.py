"""Killing a child's whole process tree: exports spawn zip, ffmpeg and the like."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def same_process(proc: psutil.Process) -> bool:
    """Is `proc` still the process the snapshot saw?  Pids are reused: compare creation times."""
    try:
        return psutil.Process(proc.pid).create_time() == proc.create_time()
    except psutil.Error:
        return False


def signal_tree(pid: int, sig: int, known: list[psutil.Process] | None = None) -> list[psutil.Process]:
    """Send `sig` to pid, its process group, and every descendant (snapshot taken first).

    `pid` must be a child of ours not yet reaped (a zombie at worst), so neither it nor
    its group id can have been reused; a descendant is signalled only while it is
    still the process the snapshot saw.  Returns the snapshot, so a later SIGKILL
    reaches grandchildren reparented in between.
    """
    tree = descendants(pid)
    seen = {p.pid for p in tree}
    for proc in known or []:
        if proc.pid not in seen:
            tree.append(proc)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # each child leads its own process group
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            if same_process(proc):
                proc.send_signal(sig)
    return tree


def kill_tree(pid: int, known: list[psutil.Process] | None = None) -> list[psutil.Process]:
    return signal_tree(pid, signal.SIGKILL, known)


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if same_process(proc) and proc.status() != psutil.STATUS_ZOMBIE:
                living.append(proc)
    return living
