"""5. Scheduler cost with 1,000,000 finished rows in each table (tests/integration/test_scale.py's method).

One `Scheduler.tick()` in this process, against a database holding a million
finished tasks and a million finished items of the subtype it serves (DONE,
FAILED, EXPIRED, CANCELLED, created over the last 12 days): MariaDB's session
counters of the scheduler's own connection around the pass (Rows_read,
Handler_read_*, Questions = statements), minus the cost of reading them.  The
idle pass is the median of 5; the dispatch pass handles 1,000 new READY tasks.

The history is loaded with the secondary indexes dropped and rebuilt after (a
sorted index build), which takes seconds instead of a minute.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench import stats
from bench.systems import job
from bench.systems.dlsv import Dlsv
from bench.world import SUB_TYPE, TYPE, World, connect, insert_items
from dlsupervisor import config
from dlsupervisor.election import RedisElection
from dlsupervisor.queue import open_queue
from dlsupervisor.registry import Registration, open_registry
from dlsupervisor.scheduler import Scheduler
from dlsupervisor.store import open_store

HISTORY = 1_000_000
IDLE_PASSES = 5
DISPATCH = 1000

FILL_TASKS = """
INSERT INTO download_task_main (org_id, task_name, platform, type, sub_type, status, data,
                                created_time, last_updated_time)
SELECT seq % 5000, 'history', 1, {type}, {sub_type}, ELT(1 + seq % 4, 2, -1, 3, 4), '{{"mode": "noop"}}',
       NOW(3) - INTERVAL seq SECOND, NOW(3) - INTERVAL seq SECOND
FROM seq_1_to_{count}
"""
FILL_ITEMS = """
INSERT INTO download_item (task_id, org_id, type, status, data, url, md5_value, file_name, expire_time,
                           created_time, last_updated_time)
SELECT seq, seq % 5000, {sub_type}, ELT(1 + seq % 4, 2, -1, 3, 4), '{{"mode": "noop"}}', 'file:///x', 'm',
       'x.csv', IF(seq % 4 = 0, NOW() + INTERVAL 3 DAY, NOW() - INTERVAL 1 DAY),
       NOW(3) - INTERVAL seq SECOND, NOW(3) - INTERVAL seq SECOND
FROM seq_1_to_{count}
"""


def run(world: World, history: int = HISTORY) -> dict[str, Any]:
    dlsv = Dlsv(world, label="scale")  # its database and INI; the daemon is not started
    began = time.monotonic()
    fill(dlsv.db_url, history)
    filled = time.monotonic() - began
    with in_process(dlsv) as (store, scheduler):
        idle = [measure(store, scheduler.tick) for _ in range(IDLE_PASSES)]
        insert_items(dlsv.db_url, DISPATCH, job(world, "noop"), task_status=0)
        dispatch = measure(store, scheduler.tick)
    median = sorted(idle, key=lambda m: m["counters"]["Rows_read"])[len(idle) // 2]
    return {
        "history": history,
        "fill_seconds": round(filled, 1),
        "idle": median,
        "idle_ms": stats.summary([m["ms"] for m in idle]),
        "dispatch": dispatch,
    }


@contextlib.contextmanager
def in_process(dlsv: Dlsv) -> Iterator[tuple[Any, Scheduler]]:
    """The store and an elected Scheduler of `dlsv`'s configuration, in this process
    (the daemon is not started); its subtype registered as a live worker would."""
    settings = config.load(str(dlsv.ini))
    store = open_store(settings.database)
    work_queue = open_queue(settings, store)
    try:
        registry = open_registry(settings, store, work_queue)
        registry.register(Registration("bench", TYPE, SUB_TYPE, "bench", False))
        election = RedisElection(work_queue.client, f"{settings.redis.key_prefix}scheduler", 10)
        scheduler = Scheduler(settings, store, work_queue, election, registry=registry)
        scheduler.tick()  # connect, elect
        yield store, scheduler
    finally:
        work_queue.close()
        store.close()


def measure(store, action: Callable[[], Any]) -> dict[str, Any]:
    """Counter deltas of the store's connection around `action`, minus reading them."""
    before = store.session_counters()
    baseline = store.session_counters()
    started = time.perf_counter()
    report = action()
    ms = 1000 * (time.perf_counter() - started)
    after = store.session_counters()
    counters = {k: after[k] - 2 * baseline[k] + before[k] for k in after}
    return {"counters": counters, "ms": ms, "dispatched": report.dispatched if report else None}


def fill(db_url: str, count: int) -> None:
    """A million finished rows per table, loaded without secondary indexes, then indexed."""
    with contextlib.closing(connect(db_url)) as conn, conn.cursor() as cursor:
        for table, sql in (("download_task_main", FILL_TASKS), ("download_item", FILL_ITEMS)):
            keys = secondary_keys(cursor, table)
            cursor.execute(f"ALTER TABLE {table} " + ", ".join(f"DROP INDEX `{name}`" for name in keys))
            cursor.execute(sql.format(type=TYPE, sub_type=SUB_TYPE, count=int(count)))
            cursor.execute(f"ALTER TABLE {table} " + ", ".join(f"ADD {spec}" for spec in keys.values()))
        cursor.execute("ANALYZE TABLE download_task_main, download_item")
        cursor.fetchall()


def secondary_keys(cursor, table: str) -> dict[str, str]:
    """name -> `KEY name (cols)` of the table's non-primary indexes, from SHOW CREATE TABLE."""
    cursor.execute(f"SHOW CREATE TABLE {table}")
    ddl = cursor.fetchone()["Create Table"]
    found = {}
    for line in ddl.splitlines():
        match = re.match(r"\s*(KEY `([^`]+)` \(.*\))", line.rstrip(","))
        if match:
            found[match.group(2)] = match.group(1)
    return found
