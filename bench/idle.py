"""6. Idle cost over 60 s: CPU (% of one core) and memory of each system with 4 idle workers.

The three systems idle side by side (idle, they barely compete), each sampled by
psutil: CPU time used over the window by its own processes (dlsupervisor: master,
scheduler, 4 workers; Celery: main process and 4 pool processes; RQ: 4 workers),
and their memory at the end: summed RSS (what the target names; it counts the
pages forked processes share once per process), PSS (shared pages split between
the sharers: what they really cost together) and USS (pages no other process has).
Database and Redis server CPU are not included.

CPU at idle is mostly the cost of waking up, which on a virtual machine depends
on the moment: so each system's wake-ups per second (voluntary context
switches) are counted too, and a reference process that only sleeps 0.5 s in a
loop runs in the same window: its CPU per wake-up calibrates the others.
"""

from __future__ import annotations

import time
from typing import Any

from bench import procs, stats
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
    sleeper = procs.launch("sleeper", ["-c", SLEEPER], world.tmp / "sleeper.log")
    world.on_close(lambda: procs.stop(sleeper))
    try:
        for system in systems:
            system.start()
        time.sleep(SETTLE)
        roles = {system.name: system.processes() for system in systems}
        roles["reference: sleep(0.5) loop"] = {"sleeper": [sleeper.pid]}
        before = {name: _cpu(by_role) for name, by_role in roles.items()}
        woke = {name: stats.wakeups(_pids(by_role)) for name, by_role in roles.items()}
        began = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - began
        after = {name: _cpu(by_role) for name, by_role in roles.items()}
        results: dict[str, Any] = {"seconds": round(elapsed, 1)}
        for name, by_role in roles.items():
            wakes = (stats.wakeups(_pids(by_role)) - woke[name]) / elapsed
            results[name] = {
                "wakeups_per_s": wakes,
                "cpu_percent": {
                    role: 100 * (after[name][role] - before[name][role]) / elapsed for role in after[name]
                },
                "memory_mb": {role: stats.memory_mb(pids) for role, pids in by_role.items()},
                "processes": {role: len(pids) for role, pids in by_role.items()},
            }
            results[name]["cpu_percent"]["total"] = sum(results[name]["cpu_percent"].values())
            results[name]["memory_mb"]["total"] = stats.memory_mb(_pids(by_role))
    finally:
        for system in systems:
            system.stop()
        procs.stop(sleeper)
    reference = results["reference: sleep(0.5) loop"]
    wakes = reference["wakeups_per_s"]
    results["ms_per_wakeup"] = 10 * reference["cpu_percent"]["total"] / wakes if wakes else None
    return results


SLEEPER = "import time\nwhile True:\n    time.sleep(0.5)"


def _pids(by_role: dict[str, list[int]]) -> list[int]:
    return [pid for pids in by_role.values() for pid in pids]


def _cpu(by_role: dict[str, list[int]]) -> dict[str, float]:
    return {role: stats.cpu_seconds(pids) for role, pids in by_role.items()}
