"""SIGHUP: parse, check, diff.  A bad file, or handlers that do not import, change nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dlsupervisor import config
from dlsupervisor.child import Child
from dlsupervisor.config import Settings
from dlsupervisor.errors import ConfigError
from dlsupervisor.master.pool import child_conf


def load_checked(path: str, check_handlers: Callable[[Settings], str | None]) -> Settings:
    """The new settings, or ConfigError naming the first problem (file, section, key, handler)."""
    new = config.load(path)
    problem = check_handlers(new)
    if problem:
        raise ConfigError(problem)
    return new


def retirements(children: Iterable[Child], new: Settings) -> list[tuple[Child, str]]:
    """The children the new settings no longer describe, with why: they finish their item, then go."""
    leaving = []
    for child in children:
        if child.retiring:
            continue
        sub = new.subtype(child.subtype) if child.subtype else None
        if child.subtype is not None and sub is None:
            leaving.append((child, "subtype removed"))
        elif child.conf != child_conf(new, sub):
            leaving.append((child, "configuration changed"))
    return leaving
