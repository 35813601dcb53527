"""6. Idle cost over 60 s: CPU (% of one core) and memory of each system with 4 idle workers.

The three systems idle side by side (idle, they barely compete), each sampled by
psutil: CPU time used over the window by its own processes (dlsupervisor: master,
scheduler, 4 workers; Celery: main process and 4 pool processes; RQ: 4 workers),
and their memory at the end: summed RSS (what the target names; it counts the
pages forked processes share once per process), PSS (shared pages split between
the sharers: what they really cost together) and USS (pages no other process has).
Database and Redis server CPU are not included.
"""

from __future__ import annotations

import time
from typing import Any

from bench import stats
from bench.systems import System
from bench.systems.celery_peer import CeleryPeer
from bench.systems.dlsv import Dlsv
from bench.systems.rq_peer import RqPeer
from bench.world import World

SECONDS = 60.0
SETTLE = 3.0  # seconds after start before the window opens


def run(world: World, seconds: float = SECONDS) -> dict[str, Any]:
    systems: list[System] = [
        Dlsv(world, label="idle_dlsv"),
        CeleryPeer(world, label="idle_celery"),
        RqPeer(world, label="idle_rq"),
    ]
    try:
        for system in systems:
            system.start()
        time.sleep(SETTLE)
        roles = {system.name: system.processes() for system in systems}
        before = {name: _cpu(by_role) for name, by_role in roles.items()}
        began = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - began
        after = {name: _cpu(by_role) for name, by_role in roles.items()}
        results: dict[str, Any] = {"seconds": round(elapsed, 1)}
        for name, by_role in roles.items():
            results[name] = {
                "cpu_percent": {
                    role: 100 * (after[name][role] - before[name][role]) / elapsed for role in after[name]
                },
                "memory_mb": {role: stats.memory_mb(pids) for role, pids in by_role.items()},
                "processes": {role: len(pids) for role, pids in by_role.items()},
            }
            results[name]["cpu_percent"]["total"] = sum(results[name]["cpu_percent"].values())
            results[name]["memory_mb"]["total"] = stats.memory_mb(
                [pid for pids in by_role.values() for pid in pids]
            )
    finally:
        for system in systems:
            system.stop()
    return results


def _cpu(by_role: dict[str, list[int]]) -> dict[str, float]:
    return {role: stats.cpu_seconds(pids) for role, pids in by_role.items()}
