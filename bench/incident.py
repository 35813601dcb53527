"""A series of incidents (a timeout, a killed worker), one at a time, and what each took to settle.

For each: a fresh item is sent with the given export mode; once the export reports
its start, `strike(event)` acts (or not) and returns the reference time (the
deadline, the kill).  Then the item's row and a replacement worker are watched
together: `failed` is when the row turned FAILED (its own last_updated_time),
`ready` when the system showed a fresh worker ready.  An export that started a
`sleep 1000` is checked for it: still alive SETTLE seconds after the replacement
is "left behind" (and killed by the benchmark).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from bench import procs, stats
from bench.systems import System, job
from bench.world import World, connect, insert_items, item_state

SETTLE = 2.0  # seconds after the replacement that a grandchild may still take to go
WATCH_TIMEOUT = 20.0


def series(
    world: World,
    system: System,
    samples: int,
    mode: str,
    strike: Callable[[dict[str, Any]], float],
    spacing: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    item_ids = insert_items(system.db_url, samples, job(world, mode, **extra))
    world.events.clear()
    rows = []
    with contextlib.closing(connect(system.db_url)) as conn:
        for item_id in item_ids:
            rows.append(one(world, system, conn, item_id, mode, strike, extra))
            time.sleep(spacing)
    return digest(rows)


def one(world, system, conn, item_id, mode, strike, extra) -> dict[str, Any]:
    system.enqueue([item_id], job(world, mode, **extra))
    event = world.events.wait(
        lambda e: e["kind"] == "start" and e["item"] == item_id, 10, "the export's start"
    )
    before = system.export_pids()
    reference = strike(event)

    def failed() -> float | None:
        row = item_state(conn, item_id)
        return row["at"] if row["status"] == -1 else None

    seen = procs.watch({"failed": failed, "ready": lambda: system.replaced(before)}, WATCH_TIMEOUT)
    row = {
        "failed": seen["failed"] - reference,
        "ready": seen["ready"] - reference,
        "remark": item_state(conn, item_id)["remark"],
    }
    child = event.get("child")
    if child:
        gone = _gone_within(child, SETTLE)
        row["left_behind"] = not gone
        if not gone:
            procs.kill(child)
    return row


def _gone_within(pid: int, seconds: float) -> bool:
    try:
        procs.wait_until(lambda: not procs.alive(pid), seconds, "grandchild gone", interval=0.01)
    except procs.BenchError:
        return False
    return True


def digest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    remarks = sorted({(row["remark"] or "").split(":")[0] + ":" for row in rows})
    result: dict[str, Any] = {
        "failed": stats.summary([row["failed"] for row in rows]),
        "ready": stats.summary([row["ready"] for row in rows]),
        "remarks": remarks,
        "example_remark": rows[0]["remark"] if rows else None,
    }
    if rows and "left_behind" in rows[0]:
        result["left_behind"] = sum(row["left_behind"] for row in rows)
        result["samples"] = len(rows)
    return result
