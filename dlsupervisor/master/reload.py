"""SIGHUP: parse, check, diff.  A bad file, or handlers that do not import, change nothing.

The handler check runs in a child the loop polls (`PendingReload`), so the master
keeps supervising -- heartbeats, reaping, timeouts -- while a slow import runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dlsupervisor.child import Child
from dlsupervisor.config import Settings
from dlsupervisor.master.pool import WEB, child_conf


@dataclass
class PendingReload:
    """A parsed file waiting for its handler check; `again`: another SIGHUP came meanwhile."""

    settings: Settings
    check: Any  # ops.HandlerCheck, or a test's stand-in
    again: bool = False


def moved_servers(old: Settings, new: Settings) -> str | None:
    """`[database]` / `[redis]` if the new file moves them: the master's own store and queue
    stay on the old server, so such a file is refused whole (never half-applied)."""
    moved = [
        section
        for section, before, after in (
            ("[database]", old.database, new.database),
            ("[redis]", old.redis, new.redis),
        )
        if before != after
    ]
    return " and ".join(moved) or None


def retirements(children: Iterable[Child], new: Settings) -> list[tuple[Child, str]]:
    """The children the new settings no longer describe, with why: they finish their item, then go."""
    leaving = []
    for child in children:
        if child.retiring:
            continue
        sub = new.subtype(child.subtype) if child.subtype else None
        if child.role == "web":
            if new.web is None:
                leaving.append((child, "[web] removed"))
            elif child.conf != child_conf(new, WEB):
                leaving.append((child, "configuration changed"))
        elif child.subtype is not None and sub is None:
            leaving.append((child, "subtype removed"))
        elif child.conf != child_conf(new, sub):
            leaving.append((child, "configuration changed"))
    return leaving
