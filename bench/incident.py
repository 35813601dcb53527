"""A series of incidents (a timeout, a killed worker), one at a time, and what each took to settle.

For each: a fresh item is sent with the given export mode; once the export reports
its start, `strike(event)` acts (or not) and returns the reference time (the
deadline, the kill).  Then the item's row and a replacement worker are watched
together: `failed` is when the row turned FAILED (its own last_updated_time),
`ready` when the system showed a fresh worker ready.  An export that started a
`sleep 1000` is checked for it at the end of the series: still alive then (at
least SETTLE seconds after its incident) is "left behind", and the benchmark
kills it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from bench import procs, stats
from bench.systems import System, job
from bench.world import World, connect, insert_items, item_state

SETTLE = 1.0  # seconds after the last incident that a grandchild may still take to go
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
    world.events.clear()
    rows = []
    with contextlib.closing(connect(system.db_url)) as conn:
        for _ in range(samples):
            # One row at a time: rows left waiting would be re-sent by dlsupervisor's scheduler
            # after redispatch_after (10 s) and start out of turn.
            (item_id,) = insert_items(system.db_url, 1, job(world, mode, **extra))
            rows.append(one(world, system, conn, item_id, mode, strike, extra))
            time.sleep(spacing)
    children = [row.pop("child") for row in rows if "child" in row]
    if children:
        time.sleep(SETTLE)
        left = [pid for pid in children if procs.alive(pid)]
        for pid in left:
            procs.kill(pid)
        return {**digest(rows), "left_behind": len(left), "samples": len(children)}
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
    if event.get("child"):
        row["child"] = event["child"]
    return row


def digest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    remarks = sorted({(row["remark"] or "").split(":")[0] + ":" for row in rows})
    return {
        "failed": stats.summary([row["failed"] for row in rows]),
        "ready": stats.summary([row["ready"] for row in rows]),
        "remarks": remarks,
        "example_remark": rows[0]["remark"] if rows else None,
    }
