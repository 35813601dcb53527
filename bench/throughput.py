"""1. Throughput: 5,000 single-item tasks, no-op export, 4 workers; and the raw database ceiling.

For each system the rows exist and their messages are queued before it starts, so
its producer never competes with its workers for the two cores; the rate is
(n - 1) / (last DONE - first DONE), from the rows' own `last_updated_time`.  The
raw ceiling is 4 processes doing only the claim and the success update of
bench/dbwork.py, measured the same way.  Reported with it: the CPU the system's
own processes used per item once it was up (database and Redis servers not included).
A system that cannot finish within DRAIN_CAP (RQ, forking a horse per job) is rated on
the items it finished by then.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from typing import Any

from bench import dbwork, inserted, procs, stats
from bench.systems import System, job
from bench.systems.celery_peer import CeleryPeer
from bench.systems.dlsv import Dlsv
from bench.systems.rq_peer import RqPeer
from bench.world import World, connect, insert_items, wait_done

ITEMS = 5000
WORKERS = 4
DRAIN_CAP = 30.0  # seconds a system may take; a slower one is rated on what it finished by then


def run(
    world: World, items: int = ITEMS, burst: int = inserted.BURST, stream_s: float = inserted.STREAM_SECONDS
) -> dict[str, Any]:
    results: dict[str, Any] = {"items": items, "workers": WORKERS, "burst": burst, "stream_s": stream_s}
    results["raw"] = raw_ceiling(world, items)
    for make in (Dlsv, CeleryPeer, RqPeer):
        system = make(world, label=f"tp_{make.__name__.lower()}", workers=WORKERS)
        results[system.name] = drain(world, system, items)
    rate = results["raw"]["items_per_s"]
    for make in (Dlsv, CeleryPeer):  # RQ, a fork per job, is far below either already
        label = make.__name__.lower()
        system = make(world, label=f"tpb_{label}", workers=WORKERS)
        results[f"{system.name} burst"] = inserted.burst(world, system, burst)
        system = make(world, label=f"tps_{label}", workers=WORKERS)
        results[f"{system.name} stream"] = inserted.stream(world, system, rate, stream_s)
    return results


def drain(world: World, system: System, items: int) -> dict[str, Any]:
    item_ids = insert_items(system.db_url, items, job(world, "noop"))
    system.enqueue(item_ids, job(world, "noop"))
    return measure_drain(system, item_ids)


def measure_drain(system: System, item_ids: list[int]) -> dict[str, Any]:
    """Start `system` on rows (and wake-ups) already there; its rate until they are DONE."""
    system.start()
    cpu_before, done_before = stats.cpu_seconds(_all_pids(system)), count_done(system.db_url, item_ids)
    try:
        done = wait_done(system.db_url, item_ids, DRAIN_CAP)
        cpu = stats.cpu_seconds(_all_pids(system)) - cpu_before
    finally:
        system.stop()
    return {**done, "cpu_ms_per_item": 1000 * cpu / max(done["done"] - done_before, 1)}


def _all_pids(system: System) -> list[int]:
    return [pid for pids in system.processes().values() for pid in pids]


def count_done(db_url: str, item_ids: list[int]) -> int:
    with contextlib.closing(connect(db_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) AS n FROM download_item WHERE status = 2 AND id BETWEEN %s AND %s",
            (min(item_ids), max(item_ids)),
        )
        return int(cursor.fetchone()["n"])


def raw_ceiling(world: World, items: int) -> dict[str, Any]:
    """4 processes doing only the claim and the success update, as fast as they can."""
    db_url = world.database("tp_raw")
    item_ids = insert_items(db_url, items, job(world, "noop"))
    context = multiprocessing.get_context("fork")
    go = context.Event()
    workers = [
        context.Process(target=_raw_worker, args=(db_url, item_ids[n::WORKERS], go)) for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # let them connect
    go.set()
    for worker in workers:
        worker.join(DRAIN_CAP)
        if worker.is_alive():
            procs.kill(worker.pid)
            worker.join()
    return wait_done(db_url, item_ids, 5)


def _raw_worker(db_url: str, item_ids: list[int], go) -> None:
    conn = dbwork.connection(db_url)
    claim_token = dbwork.token()
    go.wait()
    for item_id in item_ids:
        dbwork.claim(conn, item_id, claim_token)
        dbwork.succeed(conn, item_id, claim_token)
