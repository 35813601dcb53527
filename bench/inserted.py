"""1b. Throughput on rows the application inserts itself: a burst, and a steady stream.

The seed's users create work by inserting rows; dlsupervisor's scheduler finds them.
The peers have no scheduler: their application inserts the rows and then sends one
message per row, as a Celery or RQ user would, and that producer's cost is theirs.

- burst: `BURST` READY tasks committed in one transaction while the system is up and
  idle; rate = (n - 1) / (last DONE - first DONE), as in throughput.py, and the wall
  rate from the commit to the last DONE (which includes the wait for the first pass).
- stream: a producer process commits a batch every `TICK` seconds, at `rate` items/s in
  all (the raw ceiling's rate of the same run), for `seconds`; rate = items / (last DONE
  - first commit): a system that keeps up shows the offered rate, one that falls behind
  its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from typing import Any

from bench import procs
from bench.systems import System, job
from bench.world import World, connect, insert_batch, wait_done

BURST = 3000
STREAM_SECONDS = 5.0
TICK = 0.02  # seconds between the stream's batches


def burst(world: World, system: System, count: int = BURST) -> dict[str, Any]:
    system.start()
    try:
        began = time.time()
        with contextlib.closing(connect(system.db_url)) as conn:
            item_ids = insert_batch(conn, count, job(world, "noop"), task_status=_status(system))
        if not system.finds_rows:
            system.enqueue(item_ids, job(world, "noop"))
        done = wait_done(system.db_url, item_ids, 60)
    finally:
        system.stop()
    return {**done, "wall_items_per_s": _wall(system.db_url, item_ids, began)}


def stream(world: World, system: System, rate: float, seconds: float = STREAM_SECONDS) -> dict[str, Any]:
    system.start()
    per_batch = max(1, round(rate * TICK))
    batches = max(1, round(seconds / TICK))
    context = multiprocessing.get_context("fork")
    ids = context.Queue()
    producer = context.Process(target=_produce, args=(world, system, per_batch, batches, ids))
    try:
        began = time.time()
        producer.start()
        item_ids = [i for _ in range(batches) for i in ids.get(timeout=120)]
        producer.join(30)
        done = wait_done(system.db_url, item_ids, 60)
    finally:
        if producer.is_alive():
            procs.kill(producer.pid)
            producer.join()
        system.stop()
    return {
        **done,
        "offered_per_s": per_batch / TICK,
        "wall_items_per_s": _wall(system.db_url, item_ids, began),
    }


def _produce(world: World, system: System, per_batch: int, batches: int, out: Any) -> None:
    """The application: a batch every TICK, committed, then (for the peers) sent."""
    with contextlib.closing(connect(system.db_url)) as conn:
        start = time.monotonic()
        for n in range(batches):
            item_ids = insert_batch(conn, per_batch, job(world, "noop"), task_status=_status(system))
            if not system.finds_rows:
                system.enqueue(item_ids, job(world, "noop"))
            out.put(item_ids)
            time.sleep(max(0.0, start + (n + 1) * TICK - time.monotonic()))


def _status(system: System) -> int:
    """READY (0) for a system whose scheduler dispatches rows; the peers never read it."""
    return 0 if system.finds_rows else 1


def _wall(db_url: str, item_ids: list[int], began: float) -> float:
    """Items per second from `began` (time.time()) to the last DONE."""
    with contextlib.closing(connect(db_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) AS n, UNIX_TIMESTAMP(MAX(last_updated_time)) AS last FROM download_item "
            "WHERE status = 2 AND id BETWEEN %s AND %s",
            (min(item_ids), max(item_ids)),
        )
        row = cursor.fetchone()
    span = float(row["last"] or began) - began
    return int(row["n"]) / span if span > 0 else 0.0
