"""The three systems, behind one small interface the measurements drive.

    start()                 launch in its own session, wait until every worker is ready;
                            returns the seconds that took (also kept in world.startups)
    enqueue(ids, data)      send work for rows that already exist in the system's database
                            (the peers' messages carry `data`; dlsupervisor's exports read
                            the row's own data column)
    export_pids()           the processes that run exports now
    replaced(before)        a probe: when a fresh worker (not in `before`) was ready, or None
    processes()             role -> pids, for the idle cost
    stop()                  SIGTERM, then SIGKILL whatever is left in the session

Each system has its own database (`db_url`), so no scheduler sees another's rows.
"""

from __future__ import annotations

from typing import Any, Protocol

from bench.world import World


class System(Protocol):
    name: str
    db_url: str
    finds_rows: bool  # True: READY rows an application inserts are found without a message

    def start(self) -> float: ...
    def enqueue(self, item_ids: list[int], data: dict[str, Any]) -> None: ...
    def export_pids(self) -> set[int]: ...
    def replaced(self, before: set[int]) -> float | None: ...
    def processes(self) -> dict[str, list[int]]: ...
    def stop(self) -> None: ...


def job(world: World, mode: str, **extra: Any) -> dict[str, Any]:
    """What an export is told to do (bench/exports.py), with where to report."""
    return {"mode": mode, "redis": world.redis_url, "events": world.events.key, **extra}


def record_startup(world: World, name: str, seconds: float) -> float:
    world.startups.setdefault(name, []).append(seconds)
    return seconds
