"""run_dir/status.json: what the master knows about its children, for `status` and tests.

`Status` is its shape, written by the master and read by `dlsupervisor status`.
Written atomically (temporary file, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChildStatus:
    name: str  # "scheduler" or "SUBTYPE#SLOT"
    role: str  # "scheduler" or "worker"
    subtype: str | None
    number: int  # its place in the pool; the file calls it `slot` (contract.md §3)
    pid: int | None
    state: str  # idle, busy, stopping, backoff, starting
    item: int | None
    split: int | None
    since: float | None  # wall-clock start of the current work
    restarts: int
    items_done: int
    backoff_until: float | None  # wall clock
    progress_done: int | None = None  # what the current item's export reported (contract.md §9)
    progress_total: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {_key(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChildStatus:
        return cls(**{f.name: data.get(_key(f.name)) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class MasterStatus:
    pid: int
    host: str
    config: str
    phase: str
    started: float  # wall clock
    ready: bool
    scale_delta: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Status:
    master: MasterStatus
    children: tuple[ChildStatus, ...]
    written: float  # wall clock

    def to_json(self) -> dict[str, Any]:
        children = [child.to_json() for child in self.children]
        return {"master": self.master.to_json(), "children": children, "written": self.written}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        fields = dataclasses.fields(MasterStatus)
        master = MasterStatus(**{f.name: data["master"].get(f.name) for f in fields})
        children = tuple(ChildStatus.from_json(child) for child in data["children"])
        return cls(master, children, data["written"])


def _key(field_name: str) -> str:
    """A field's key in the file: the pool number keeps its published name, `slot`."""
    return "slot" if field_name == "number" else field_name


def write(path: str, status: Status) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(status.to_json(), handle, separators=(",", ":"))
    os.replace(temporary, path)


def read(path: str) -> dict[str, Any] | None:
    """The file as JSON, as a script sees it; None if missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def load(path: str) -> Status | None:
    """The file as a Status; None if missing, unreadable or not of this shape."""
    data = read(path)
    if data is None:
        return None
    try:
        return Status.from_json(data)
    except (KeyError, TypeError, AttributeError):
        return None
