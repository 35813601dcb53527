"""4. Crash recovery, p50/p99 over 20: SIGKILL of a busy worker → item marked, → replacement ready.

The process running the export (dlsupervisor's worker, Celery's pool process, RQ's
work horse) is killed with SIGKILL while the export sleeps.  The item is marked by
the system's own machinery: dlsupervisor's master (`worker died:`), Celery's
`task_failure` signal in its main process, RQ's `work_horse_killed_handler` in the
worker.  Each incident starts 1.05 s after the previous replacement was ready, so no
dlsupervisor worker is killed younger than min_uptime (1 s): that would count as
crash-looping, and the next restart would wait (backoff), which is not what this
measures.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from bench import incident
from bench.systems.celery_peer import CeleryPeer
from bench.systems.dlsv import Dlsv
from bench.systems.rq_peer import RqPeer
from bench.world import World

SAMPLES = 20
SLOW_SAMPLES = {"Celery": 10}  # Celery takes ~5 s to notice a lost pool process: fewer, to fit the run
SPACING = 1.05  # > min_uptime


def run(world: World, samples: int = SAMPLES) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for make in (Dlsv, CeleryPeer, RqPeer):
        system = make(world, label=f"crash_{make.__name__.lower()}")
        system.start()
        count = min(samples, SLOW_SAMPLES.get(system.name, samples))
        try:
            results[system.name] = incident.series(
                world, system, count, "sleep", kill_export, spacing=SPACING, seconds=60
            )
        finally:
            system.stop()
    return results


def kill_export(event: dict[str, Any]) -> float:
    killed = time.time()
    os.kill(event["pid"], signal.SIGKILL)
    return killed
