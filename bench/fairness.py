"""Fairness across tenants (contract §9, issue 14): what it buys and what it costs.

1. Flood.  2 workers; a heavy org submits 1,000 tasks of a 20 ms export (the export
   sleeps), one after the other, then 10 light orgs submit one task each.  A light task's
   wait runs from just before its submission to the first line of its export (the
   export's own time.time(), reported through the run's events).  Three systems, same
   run, same export:

       dlsupervisor (fair)      the default: each item queues at its place in its org's line
       dlsupervisor (one org)   FIFO emulated: there is no switch to turn fairness off, so
                                the light tasks carry the heavy org's org_id and queue
                                behind its backlog, as every task would without fairness
       Celery (one queue)       bench/systems/celery_peer.py with 2 pool processes

   A submission is `Client.submit()` for dlsupervisor (insert, rank, push) and, for
   Celery, the row's insert (one transaction) then `send_task`.  The heavy backlog's
   completion runs from its first submission to its last item DONE (the row's time).

2. Cost on no-op throughput.  dlsupervisor, 4 workers, draining N no-op items that
   belong to 50 orgs in blocks (so the fair order is far from id order) against the same
   N all of one org (the fair order is then plain id order), measured as bench/throughput.py
   does (rows' own DONE times).  Two ways in: wake-ups queued before the start at the
   places the store's ranked query gives (what submit() pushes), and READY tasks the
   scheduler dispatches (its ranked query inside the measured window).  The runs alternate
   (1, 50, 50, 1, ...) so that the machine's drift falls on both sides.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from bench import scale, stats
from bench.systems import job
from bench.systems.celery_peer import CeleryPeer
from bench.systems.dlsv import Dlsv
from bench.throughput import measure_drain
from bench.world import World, connect, insert_items, insert_task_sql, wait_done

HEAVY_TASKS = 1000
LIGHT_ORGS = 10
EXPORT_S = 0.02
WORKERS = 2
HEAVY_ORG, LIGHT_ORG = 1, 101  # light orgs: 101 .. 110
ITEMS = 5000
ORGS = 50
REPEATS = 2
DRAIN_WORKERS = 4
BACKLOGS = (5000, 20000)  # waiting items for one scheduler pass (part 3)
WAIT_CAP = 120.0  # seconds for a light task to start / the backlog to finish (FIFO: ~10 s)

FAIR, ONE_ORG, CELERY = "dlsupervisor (fair)", "dlsupervisor (one org: FIFO)", "Celery (one queue)"
QUEUED, DISPATCHED = "queued at ranked places", "dispatched by the scheduler"

Submit = Callable[[int], int]  # n -> the id the flood needs back (task id / item id)


def run(
    world: World,
    heavy: int = HEAVY_TASKS,
    items: int = ITEMS,
    repeats: int = REPEATS,
    backlogs: tuple[int, ...] = BACKLOGS,
) -> dict:
    results: dict[str, Any] = {
        "heavy": heavy,
        "light": LIGHT_ORGS,
        "export_s": EXPORT_S,
        "workers": WORKERS,
        "items": items,
        "orgs": ORGS,
        "drain_workers": DRAIN_WORKERS,
    }
    shared = {name: list(seconds) for name, seconds in world.startups.items()}
    try:  # these starts (2-worker systems among them) stay out of the main table's row
        results["flood"] = {
            FAIR: flood_dlsv(world, heavy, fair=True),
            ONE_ORG: flood_dlsv(world, heavy, fair=False),
            CELERY: flood_celery(world, heavy),
        }
        results["cost"] = cost(world, items, repeats)
        results["passes"] = pass_costs(world, backlogs)
    finally:
        world.startups.clear()
        world.startups.update(shared)
    return results


# -- 1. the flood ---------------------------------------------------------------------------


def flood_dlsv(world: World, heavy: int, fair: bool) -> dict[str, Any]:
    dlsv = Dlsv(world, label="fair_rr" if fair else "fair_fifo", workers=WORKERS)
    world.events.clear()
    dlsv.start()
    try:
        with dlsv.client() as client:

            def submit(org: int, tag: str) -> int:
                return client.submit("bench", org, job(world, "sleep", seconds=EXPORT_S, tag=tag))

            result, task_ids = flood(
                world,
                lambda n: submit(HEAVY_ORG, "heavy"),
                lambda n: submit(LIGHT_ORG + n if fair else HEAVY_ORG, f"light-{n}"),
                heavy,
            )
        result.update(backlog(dlsv.db_url, items_of_tasks(dlsv.db_url, task_ids), result["began"]))
    finally:
        dlsv.stop()
    return result


def flood_celery(world: World, heavy: int) -> dict[str, Any]:
    celery = CeleryPeer(world, label="fair_celery", workers=WORKERS)
    world.events.clear()
    celery.start()
    try:
        with contextlib.closing(connect(celery.db_url)) as conn:

            def submit(org: int, tag: str) -> int:
                data = job(world, "sleep", seconds=EXPORT_S, tag=tag)
                item_id = insert_task_sql(conn, data, org_id=org, task_status=1)
                celery.enqueue([item_id], data)
                return item_id

            result, item_ids = flood(
                world,
                lambda n: submit(HEAVY_ORG, "heavy"),
                lambda n: submit(LIGHT_ORG + n, f"light-{n}"),
                heavy,
            )
        result.update(backlog(celery.db_url, item_ids, result["began"]))
    finally:
        celery.stop()
    return result


def flood(world: World, heavy_submit: Submit, light_submit: Submit, heavy: int) -> tuple[dict, list[int]]:
    """`heavy` heavy submissions, then one of each light org; the light ones' waits.
    Returns the figures and the heavy submissions' ids."""
    began = time.time()
    ids, seconds = [], []
    for n in range(heavy):
        before = time.perf_counter()
        ids.append(heavy_submit(n))
        seconds.append(time.perf_counter() - before)
    sent: dict[str, float] = {}
    for n in range(LIGHT_ORGS):
        sent[f"light-{n}"] = time.time()
        light_submit(n)
    events = world.events
    starts = {
        tag: events.wait(lambda e, t=tag: e.get("tag") == t, WAIT_CAP, "a light start")["t"] for tag in sent
    }
    events.poll(lambda e: False)  # read every start reported so far
    heavy_starts = [e["t"] for e in events.seen if e.get("tag") == "heavy"]
    light_at, last_light = min(sent.values()), max(starts.values())
    waits = [starts[tag] - sent[tag] for tag in sent]
    return (
        {
            "began": began,
            "submit": stats.summary(seconds),
            "submit_first": stats.summary(seconds[: max(heavy // 10, 1)]),  # the org's line still short
            "submit_last": stats.summary(seconds[-max(heavy // 10, 1) :]),  # ... and long
            "waiting_at_light": heavy - sum(1 for t in heavy_starts if t < light_at),
            "heavy_between": sum(1 for t in heavy_starts if light_at <= t <= last_light),
            "wait": stats.summary(waits),
            "waits": waits,
        },
        ids,
    )


def items_of_tasks(db_url: str, task_ids: list[int]) -> list[int]:
    with contextlib.closing(connect(db_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM download_item WHERE task_id BETWEEN %s AND %s ORDER BY id",
            (min(task_ids), max(task_ids)),
        )
        return [row["id"] for row in cursor.fetchall()]


def backlog(db_url: str, item_ids: list[int], began: float) -> dict[str, Any]:
    """When the heavy org's items were all DONE, from its first submission."""
    done = wait_done(db_url, item_ids, WAIT_CAP)
    last = done["last_done_at"]
    return {
        "backlog_done": done["done"],
        "backlog_s": None if last is None else last - began,
        "backlog_rate": done["items_per_s"],
    }


# -- 2. the cost ----------------------------------------------------------------------------


def cost(world: World, items: int, repeats: int) -> dict[str, dict[str, list[dict]]]:
    """Each way in, 1 org against ORGS orgs, alternating: 1, ORGS, ORGS, 1, ..."""
    runs: dict[str, dict[str, list[dict]]] = {QUEUED: {}, DISPATCHED: {}}
    for way, dispatched in ((QUEUED, False), (DISPATCHED, True)):
        for index in range(repeats):
            for orgs in (1, ORGS) if index % 2 == 0 else (ORGS, 1):
                label = f"fc_{'d' if dispatched else 'q'}{index}_{orgs}"
                runs[way].setdefault(str(orgs), []).append(drain_orgs(world, label, items, orgs, dispatched))
    return runs


def drain_orgs(world: World, label: str, items: int, orgs: int, dispatched: bool) -> dict[str, Any]:
    dlsv = Dlsv(world, label=label, workers=DRAIN_WORKERS)
    item_ids = insert_items(
        dlsv.db_url, items, job(world, "noop"), orgs=orgs, task_status=0 if dispatched else 1
    )
    first_round = None
    if not dispatched:
        dlsv.enqueue_ranked(item_ids)
        first_round = first_round_orgs(dlsv, orgs)
    return {**measure_drain(dlsv, item_ids), "first_round_orgs": first_round}


def first_round_orgs(dlsv: Dlsv, orgs: int) -> int:
    """How many distinct orgs the first `orgs` queued wake-ups belong to (the check that the
    queue really is round-robin: `orgs` when it is)."""
    client = dlsv.world.redis
    members = client.zrange(f"{dlsv.world.prefix}{dlsv.label}:q:bench", 0, orgs - 1)
    ids = [int(member.split(":")[1]) for member in members]
    with contextlib.closing(connect(dlsv.db_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(DISTINCT org_id) AS n FROM download_item "
            f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
            ids,
        )
        return int(cursor.fetchone()["n"])


# -- 3. what one scheduler pass pays for a waiting backlog ----------------------------------


def pass_costs(world: World, backlogs: tuple[int, ...]) -> list[dict[str, Any]]:
    """One in-process `Scheduler.tick()` (bench/scale.py's method) over `n` READY items of
    PROCESSING tasks (what submit() leaves waiting: nothing to dispatch), fresh, then all
    waiting longer than redispatch_after (re-dispatch ranks them and re-sends 1,000)."""
    found = []
    for n in backlogs:
        dlsv = Dlsv(world, label=f"fp_{n}")  # its database and INI; the daemon is not started
        insert_items(dlsv.db_url, n, job(world, "noop"), task_status=1)
        row: dict[str, Any] = {"waiting": n}
        with scale.in_process(dlsv) as (store, scheduler):
            row["fresh"] = median_pass(store, scheduler)
            with contextlib.closing(connect(dlsv.db_url)) as conn, conn.cursor() as cursor:
                cursor.execute(
                    "UPDATE download_item SET last_updated_time = NOW(3) - INTERVAL 60 SECOND "
                    "WHERE status = 0"
                )
            row["stale"] = median_pass(store, scheduler)
        found.append(row)
    return found


def median_pass(store: Any, scheduler: Any, passes: int = 3) -> dict[str, Any]:
    """The median of `passes` passes by rows read: Handler_read_* summed, statements, ms."""
    found = []
    for _ in range(passes):
        taken = scale.measure(store, scheduler.tick)
        counters = taken["counters"]
        reads = sum(v for k, v in counters.items() if k.startswith("Handler_read"))
        found.append({"handler_reads": reads, "statements": counters["Questions"], "ms": taken["ms"]})
    return sorted(found, key=lambda m: m["handler_reads"])[len(found) // 2]


# -- the table ------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    tables = [*flood_table(results), "", *cost_table(results), "", *pass_table(results)]
    return "\n".join([*tables, "", *verdicts(results)])


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}" if seconds < 0.01 else f"{1000 * seconds:,.0f}"


def flood_table(results: dict[str, Any]) -> list[str]:
    flood_runs, export = results["flood"], results["export_s"]
    names = list(flood_runs)

    def row(label: str, cell: Callable[[dict], str]) -> str:
        return f"| {label} | " + " | ".join(cell(flood_runs[name]) for name in names) + " |"

    return [
        f"Flood: {results['workers']} workers, a heavy org submits {results['heavy']:,} tasks of a "
        f"{1000 * export:.0f} ms export, then {results['light']} light orgs 1 task each.",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 1),
        row(
            "light task: submit → export start, p50 / p99 (ms)",
            lambda r: f"{_ms(r['wait']['p50'])} / {_ms(r['wait']['p99'])}",
        ),
        row(
            f"— in export durations ({1000 * export:.0f} ms), p50 / p99",
            lambda r: f"{r['wait']['p50'] / export:.1f} / {r['wait']['p99'] / export:.1f}",
        ),
        row(
            "— in item times as run (workers / the backlog's drain rate), p50 / p99",
            lambda r: (
                f"{r['wait']['p50'] / item_time(results, r):.1f} / "
                f"{r['wait']['p99'] / item_time(results, r):.1f} (item time {_ms(item_time(results, r))} ms)"
            ),
        ),
        row(
            "heavy tasks not yet started when the light orgs submitted",
            lambda r: f"{r['waiting_at_light']:,}",
        ),
        row(
            "heavy exports started between the first light submit and the last light start",
            lambda r: f"{r['heavy_between']:,}",
        ),
        row(
            "heavy backlog: first submit → last DONE (s); its drain (items/s)",
            lambda r: f"{r['backlog_s']:.2f}; {r['backlog_rate']:.0f}" if r["backlog_s"] else "—",
        ),
        row(
            "heavy submission (dlsupervisor `submit()`; Celery insert + `send_task`), p50 / p99 (ms)",
            lambda r: f"{_ms(r['submit']['p50'])} / {_ms(r['submit']['p99'])}",
        ),
        row(
            "— p50 of the first / last 10% of the heavy submissions (ms)",
            lambda r: f"{_ms(r['submit_first']['p50'])} / {_ms(r['submit_last']['p50'])}",
        ),
    ]


def item_time(results: dict[str, Any], flood_run: dict[str, Any]) -> float:
    """What one item took per worker in this run (on a loaded machine, more than the export)."""
    rate = flood_run.get("backlog_rate") or 0.0
    return results["workers"] / rate if rate else results["export_s"]


def rates(runs: list[dict]) -> float:
    return sum(r["items_per_s"] for r in runs) / len(runs)


def fairness_cost(way: dict[str, list[dict]]) -> float:
    """The share of the one-org rate the many-org drain loses (negative: it was faster)."""
    one, many = rates(way["1"]), rates(way[str(ORGS)])
    return 1 - many / one if one else float("nan")


def cost_table(results: dict[str, Any]) -> list[str]:
    orgs = str(results["orgs"])
    lines = [
        f"Cost: {results['items']:,} no-op items, {results['drain_workers']} workers, all of 1 org vs "
        f"{orgs} orgs (mean items/s; each run in brackets; CPU of dlsupervisor's processes per item).",
        "",
        f"| drain | 1 org (items/s) | {orgs} orgs (items/s) | cost | CPU ms/item, 1 / {orgs} |",
        "|---|---|---|---|---|",
    ]
    for way, runs in results["cost"].items():

        def cell(key: str, runs: dict = runs) -> str:
            each = ", ".join(f"{r['items_per_s']:,.0f}" for r in runs[key])
            return f"{rates(runs[key]):,.0f} ({each})"

        cpu = [sum(r["cpu_ms_per_item"] for r in runs[k]) / len(runs[k]) for k in ("1", orgs)]
        share = f"{100 * fairness_cost(runs):.1f}%"
        lines.append(f"| {way} | {cell('1')} | {cell(orgs)} | {share} | {cpu[0]:.2f} / {cpu[1]:.2f} |")
    return lines


def pass_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "One scheduler pass over a waiting backlog (READY items of PROCESSING tasks: nothing to "
        "dispatch), median of 3: Handler_read_* summed; statements; ms.",
        "",
        "| items waiting | fresh | all waiting > redispatch_after |",
        "|---|---|---|",
    ]
    for row in results.get("passes", []):

        def cell(m: dict[str, Any]) -> str:
            return f"{m['handler_reads']:,}; {m['statements']}; {m['ms']:.0f} ms"

        lines.append(f"| {row['waiting']:,} | {cell(row['fresh'])} | {cell(row['stale'])} |")
    return lines


def spread(runs: list[dict]) -> float:
    """(max - min) / mean of the runs' rates: the machine's run-to-run noise."""
    values = [r["items_per_s"] for r in runs]
    return (max(values) - min(values)) / (sum(values) / len(values)) if values else 0.0


def verdicts(results: dict[str, Any]) -> list[str]:
    fair = results["flood"][FAIR]
    floor = results["light"] / results["workers"] + 1  # item times: the light tasks + one in flight
    p99 = fair["wait"]["p99"] / item_time(results, fair)
    costs = {way: fairness_cost(runs) for way, runs in results["cost"].items()}
    noise = max(spread(r) for runs in results["cost"].values() for r in runs.values())
    if noise > 0.10:
        cost_verdict = f"not decided: two runs of one variant differ by up to {100 * noise:.0f}%"
    else:
        cost_verdict = "met" if all(c <= 0.10 for c in costs.values()) else "missed"
    checks = [r.get("first_round_orgs") for r in results["cost"][QUEUED][str(results["orgs"])]]
    return [
        f"- Light tenants start within a few item times (p99 ≤ {2 * floor:.0f}, twice the floor of "
        f"{floor:.0f}: {results['light']} light tasks on {results['workers']} workers behind one in "
        f"flight): **{'met' if p99 <= 2 * floor else 'missed'}** ({p99:.1f} item times as run, "
        f"{fair['wait']['p99'] / results['export_s']:.1f} export durations).",
        f"- Fairness costs ≤ 10% of no-op throughput: **{cost_verdict}** ("
        + ", ".join(f"{way} {100 * c:.1f}%" for way, c in costs.items())
        + f"); the first {results['orgs']} queued wake-ups belonged to {checks} distinct orgs.",
    ]
