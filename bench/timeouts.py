"""3. Timeout precision, p50/p99 over 20: deadline → item FAILED, deadline → replacement ready.

The export starts `sleep 1000` and waits for it; the deadline is the export's start
plus the 1 s limit (dlsupervisor `timeout`, Celery `task_time_limit` (hard), RQ
`job_timeout`).  Whether the `sleep` outlives the kill is counted.  dlsupervisor runs
twice: an export that honours the soft stop (kill_grace left at its default 5 s, so a
soft stop that failed would show), and one that ignores SIGTERM, as does its `sleep`
(kill_grace 0.5 s, so SIGKILL ends it).
"""

from __future__ import annotations

from typing import Any

from bench import incident
from bench.systems.celery_peer import CeleryPeer
from bench.systems.dlsv import Dlsv
from bench.systems.rq_peer import RqPeer
from bench.world import World

SAMPLES = 20
TIMEOUT = 1  # seconds; RQ's job_timeout takes whole seconds
KILL_GRACE = 0.5  # for the export that ignores SIGTERM


def run(world: World, samples: int = SAMPLES) -> dict[str, Any]:
    variants = [
        ("dlsupervisor", lambda: Dlsv(world, label="to_dlsv", timeout=TIMEOUT), "grandchild"),
        (
            "dlsupervisor, export ignores SIGTERM",
            lambda: Dlsv(world, label="to_dlsv_ign", timeout=TIMEOUT, kill_grace=KILL_GRACE),
            "ignore_term",
        ),
        ("Celery", lambda: CeleryPeer(world, label="to_celery", timeout=TIMEOUT), "grandchild"),
        ("RQ", lambda: RqPeer(world, label="to_rq", timeout=TIMEOUT), "grandchild"),
    ]
    results: dict[str, Any] = {"timeout": TIMEOUT, "kill_grace_ignoring": KILL_GRACE}
    for name, make, mode in variants:
        system = make()
        system.start()
        try:
            results[name] = incident.series(world, system, samples, mode, deadline)
        finally:
            system.stop()
    return results


def deadline(event: dict[str, Any]) -> float:
    return event["t"] + TIMEOUT
