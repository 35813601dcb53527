"""The master's children: how many of each role the configuration wants, and which to add or retire."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from dlsupervisor.child import Child, ChildState
from dlsupervisor.config import Settings, SubtypeSettings

WEB = "[web]"  # the web child's role key: brackets cannot end a [subtype:NAME] name


def role_key(child: Child) -> str | None:
    """A child's key in `wanted`: its subtype, None for the scheduler, WEB for the web child."""
    return WEB if child.role == "web" else child.subtype


def child_conf(settings: Settings, sub: SubtypeSettings | str | None) -> tuple[Any, ...]:
    """What a child was started with, minus what it does not use: a reload compares these."""
    shared = (settings.database, settings.redis, settings.scheduler)
    if sub is WEB:
        return ("web", settings.web, settings.database, settings.storage, settings.supervisor.run_dir)
    if sub is None:
        return ("scheduler", *shared)
    links = (settings.web.public_url, settings.web.secret) if settings.web else None  # the urls it writes
    return (dataclasses.replace(sub, workers=0), *shared, links)


def wanted(settings: Settings, scale_delta: int, scheduler: bool) -> dict[str | None, int]:
    """How many children each role should have: None is the scheduler, WEB the web child."""
    counts: dict[str | None, int] = {None: 1} if scheduler else {}
    if settings.web is not None and scheduler:
        counts[WEB] = 1
    for sub in settings.subtypes:
        counts[sub.name] = max(0, sub.workers + scale_delta)
    return counts


def new_child(settings: Settings, subtype: str | None, number: int, now: float) -> Child:
    """A child record due to start at `now`: the scheduler, the web child, or worker `number` of a subtype."""
    if subtype == WEB:
        return Child("web", "web", None, number, child_conf(settings, WEB), next_start_at=now)
    sub = settings.subtype(subtype) if subtype else None
    name = "scheduler" if subtype is None else f"{subtype}#{number}"
    role = "scheduler" if subtype is None else "worker"
    return Child(name, role, subtype, number, child_conf(settings, sub), next_start_at=now)


class Pool:
    """Every child the master has, live or waiting to (re)start."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def __iter__(self) -> Iterator[Child]:
        """A snapshot: a step may drop children while it walks them."""
        return iter(list(self.children))

    def __len__(self) -> int:
        return len(self.children)

    def add(self, child: Child) -> None:
        self.children.append(child)

    def drop(self, child: Child) -> None:
        self.children.remove(child)

    def by_pid(self, pid: int) -> Child | None:
        return next((c for c in self.children if c.pid == pid), None)

    def active(self, role: str | None) -> list[Child]:
        """The children of a role (subtype name, None: the scheduler) not on their way out."""
        return [c for c in self.children if role_key(c) == role and not c.retiring]

    def busy(self) -> list[Child]:
        """Live children holding work the master has not started killing."""
        return [c for c in self.children if c.live and c.busy and c.state is not ChildState.KILLING]

    def surplus(self, counts: dict[str | None, int]) -> list[tuple[Child, str]]:
        """Children to retire: roles no longer wanted, then extras, idle and highest numbers first."""
        extra = [
            (c, "subtype removed") for c in self.children if not c.retiring and role_key(c) not in counts
        ]
        for role, count in counts.items():
            active = self.active(role)
            ranked = sorted(active, key=lambda c: (c.busy, -c.number))
            extra += [(c, "scaled down") for c in ranked[: max(0, len(active) - count)]]
        return extra

    def missing(self, counts: dict[str | None, int]) -> list[tuple[str | None, int]]:
        """(role, number) of each child to add, taking the lowest free numbers."""
        needed = []
        for role, count in counts.items():
            active = self.active(role)
            used = {c.number for c in active}
            for _ in range(count - len(active)):
                number = next(n for n in range(1, count + len(used) + 2) if n not in used)
                used.add(number)
                needed.append((role, number))
        return needed

    def due(self, now: float) -> list[Child]:
        """Children in BACKOFF whose start is due."""
        return [c for c in self.children if c.state is ChildState.BACKOFF and now >= c.next_start_at]

    def all_booted(self) -> bool:
        return bool(self.children) and all(c.state is not ChildState.STARTING for c in self.children)
