"""2. Pickup latency on an idle system: p50/p99 over 200 sequential tasks.

    dlsupervisor submit()   a long-lived Client: insert task + item (one transaction), push
    dlsupervisor SQL insert the application's own INSERTs; the scheduler finds them on its
                            next pass (poll_interval 0.5 s, the default)
    Celery, RQ              enqueue of a row that already exists (send_task / Queue.enqueue)

Each latency runs from just before the call to the first line of the export (its own
time.time(), reported afterwards).  Tasks are sequential with a short random pause
between them; for the SQL path the pause is uniform over one poll interval, so the
inserts land at every phase of the scheduler's cycle.  The first 5 of each series are
warm-up and not counted.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from bench import stats
from bench.systems import System, job
from bench.systems.celery_peer import CeleryPeer
from bench.systems.dlsv import Dlsv
from bench.systems.rq_peer import RqPeer
from bench.world import World, connect, insert_items, insert_task_sql

SAMPLES = 200
WARMUP = 5
POLL_INTERVAL = 0.5  # dlsupervisor's default


def run(world: World, samples: int = SAMPLES) -> dict[str, Any]:
    results: dict[str, Any] = {}
    dlsv = Dlsv(world, label="lat_dlsv")
    dlsv.start()
    try:
        results["dlsupervisor submit()"] = dlsv_submit(world, dlsv, samples)
        results["dlsupervisor SQL insert"] = dlsv_sql_insert(world, dlsv, samples)
    finally:
        dlsv.stop()
    for make in (CeleryPeer, RqPeer):
        system = make(world, label=f"lat_{make.__name__.lower()}")
        system.start()
        try:
            results[system.name] = peer_enqueue(world, system, samples)
        finally:
            system.stop()
    return results


def series(world: World, samples: int, send: Callable[[str], None], pause: Callable[[], float]) -> dict:
    """`send(tag)` starts one task whose data carries `tag`; the latencies after warm-up."""
    latencies = []
    world.events.clear()
    for index in range(samples + WARMUP):
        tag = f"lat-{index}"
        time.sleep(pause())
        sent = time.time()
        send(tag)
        event = world.events.wait(lambda e, t=tag: e["kind"] == "start" and e["tag"] == t, 10, "a start")
        if index >= WARMUP:
            latencies.append(event["t"] - sent)
    return stats.summary(latencies)


def short_pause() -> float:
    return random.uniform(0.01, 0.03)


def dlsv_submit(world: World, dlsv: Dlsv, samples: int) -> dict:
    with dlsv.client() as client:
        return series(
            world, samples, lambda tag: client.submit("bench", 1, job(world, "stamp", tag=tag)), short_pause
        )


def dlsv_sql_insert(world: World, dlsv: Dlsv, samples: int) -> dict:
    with contextlib.closing(connect(dlsv.db_url)) as conn:
        return series(
            world,
            samples,
            lambda tag: insert_task_sql(conn, job(world, "stamp", tag=tag)),
            lambda: random.uniform(0, POLL_INTERVAL),
        )


def peer_enqueue(world: World, system: System, samples: int) -> dict:
    item_ids = iter(insert_items(system.db_url, samples + WARMUP, job(world, "stamp")))
    return series(
        world,
        samples,
        lambda tag: system.enqueue([next(item_ids)], job(world, "stamp", tag=tag)),
        short_pause,
    )
