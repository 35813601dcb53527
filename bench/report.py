"""The machine a run was on, and its results as one Markdown table with the targets."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

import psutil
import redis

from bench.procs import REPO
from bench.world import MYSQL_URL, REDIS_URL, connect

DLSV, CELERY, RQ = "dlsupervisor", "Celery", "RQ"
PACKAGES = ("dlsupervisor", "celery", "kombu", "billiard", "rq", "redis", "PyMySQL", "psutil")


def machine() -> dict[str, Any]:
    with contextlib.closing(connect(MYSQL_URL)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT VERSION() AS v")
        mariadb = cursor.fetchone()["v"]
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mariadb": mariadb,
        "redis": redis.Redis.from_url(REDIS_URL).info("server")["redis_version"],
        "packages": versions,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    return ""


# -- formatting -----------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    value = seconds * 1000
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


def pair(summary: dict[str, float] | None, n: int | None = None) -> str:
    """`p50 / p99` in ms, with the sample count when it is not the row's `n`."""
    if not summary:
        return "—"
    count = f" (n={summary['n']})" if n is not None and summary["n"] != n else ""
    return f"{ms(summary['p50'])} / {ms(summary['p99'])}{count}"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def get(results: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


# -- the table ------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    rows: list[list[str]] = []
    for section in (
        throughput_rows,
        latency_rows,
        timeout_rows,
        crash_rows,
        startup_rows,
        scale_rows,
        idle_rows,
    ):
        rows += section(results)
    header = ["measure", DLSV, CELERY, RQ, "raw DB", "target (dlsupervisor)", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    load = results.get("load", {})
    if load:
        lines += ["", "Load average (1 min) before each measurement: "]
        lines[-1] += ", ".join(f"{name} {value:.2f}" for name, value in load.items())
    lines += ["", f"Total time: {results.get('seconds', 0):.0f} s."]
    return "\n".join(lines)


def throughput_rows(results: dict[str, Any]) -> list[list[str]]:
    tp = results.get("throughput")
    if not tp:
        return []
    rate = {name: get(tp, name, "items_per_s") or 0.0 for name in (DLSV, CELERY, RQ, "raw")}
    raw, celery = rate["raw"] or math.nan, rate[CELERY] or math.nan
    partial = {name: not get(tp, name, "complete") for name in (CELERY, RQ)}

    def cell(name: str) -> str:
        done = get(tp, name, "done")
        note = f" ({done:,} done in the cap)" if partial.get(name) else ""
        return f"{rate[name]:,.0f}{note}"

    ok = rate[DLSV] >= 2 * celery and rate[DLSV] >= 0.6 * raw
    return [*submitted_rows(tp, cell, rate, ok), *inserted_rows(tp)]


def submitted_rows(tp: dict[str, Any], cell: Any, rate: dict[str, float], ok: bool) -> list[list[str]]:
    raw, celery = rate["raw"] or math.nan, rate[CELERY] or math.nan
    return [
        [
            f"throughput, {tp['items']:,} no-op items, {tp['workers']} workers (items/s)",
            cell(DLSV),
            cell(CELERY),
            cell(RQ),
            f"{rate['raw']:,.0f}",
            "≥ 2× Celery and ≥ 60% of raw",
            verdict(ok),
        ],
        [
            "— share of the raw ceiling / × Celery",
            f"{100 * rate[DLSV] / raw:.0f}% / {rate[DLSV] / celery:.2f}×",
            f"{100 * rate[CELERY] / raw:.0f}%",
            f"{100 * rate[RQ] / raw:.0f}%",
            "100%",
            "",
            "",
        ],
        [
            "— CPU of the system's own processes per item (ms)",
            *(f"{get(tp, n, 'cpu_ms_per_item') or math.nan:.2f}" for n in (DLSV, CELERY, RQ)),
            "",
            "",
            "",
        ],
    ]


def inserted_rows(tp: dict[str, Any]) -> list[list[str]]:
    """Rows the application inserts: a burst committed at once, and a steady stream."""
    raw = get(tp, "raw", "items_per_s") or math.nan
    rows = []
    for path, what in (
        ("burst", f"burst of {tp.get('burst', 0):,} rows committed at once"),
        ("stream", f"steady stream for {tp.get('stream_s', 0):g} s, offered at the raw rate"),
    ):
        ours, theirs = get(tp, f"{DLSV} {path}"), get(tp, f"{CELERY} {path}")
        if not ours or not theirs:
            continue
        key = "items_per_s" if path == "burst" else "wall_items_per_s"
        mine, celery = ours[key], theirs[key] or math.nan
        rows.append(
            [
                f"throughput, rows the application inserts: {what} (items/s; wall from the commit)",
                f"{mine:,.0f} ({ours['wall_items_per_s']:,.0f})",
                f"{theirs[key]:,.0f} ({theirs['wall_items_per_s']:,.0f})",
                "n/a",
                f"{raw:,.0f}",
                "≥ 2× Celery and ≥ 60% of raw",
                verdict(mine >= 2 * celery and mine >= 0.6 * raw),
            ]
        )
        rows.append(
            [
                "— share of the raw ceiling / × Celery",
                f"{100 * mine / raw:.0f}% / {mine / celery:.2f}×",
                f"{100 * celery / raw:.0f}%",
                "",
                "100%",
                "",
                "",
            ]
        )
    return rows


def latency_rows(results: dict[str, Any]) -> list[list[str]]:
    lat = results.get("latency")
    if not lat:
        return []
    submit = lat.get(f"{DLSV} submit()")
    ok = submit is not None and submit["p50"] <= 0.003 and submit["p99"] <= 0.010
    return [
        [
            f"pickup: `submit()` / enqueue → export start, p50 / p99 (ms), n={submit['n'] if submit else 0}",
            pair(submit),
            pair(lat.get(CELERY)),
            pair(lat.get(RQ)),
            "",
            "≤ 3 / ≤ 10",
            verdict(ok),
        ],
        [
            "pickup: SQL insert → export start (poll_interval 0.5 s), p50 / p99 (ms)",
            pair(lat.get(f"{DLSV} SQL insert")),
            "n/a",
            "n/a",
            "",
            "",
            "",
        ],
    ]


def timeout_rows(results: dict[str, Any]) -> list[list[str]]:
    to = results.get("timeouts")
    if not to:
        return []
    ignoring = f"{DLSV}, export ignores SIGTERM"
    grace = to.get("kill_grace_ignoring", 0.5)
    d, di = to.get(DLSV) or {}, to.get(ignoring) or {}

    def left(digest: dict[str, Any] | None) -> str:
        if not digest or "left_behind" not in digest:
            return "—"
        return f"{digest['left_behind']} of {digest['samples']}"

    def p99(digest: dict[str, Any], key: str) -> float:
        return get(digest, key, "p99") if get(digest, key, "p99") is not None else math.inf

    n = get(d, "failed", "n") or 0
    return [
        [
            f"timeout {to['timeout']} s: deadline → item FAILED, p50 / p99 (ms), n={n}",
            pair(d.get("failed")),
            pair(get(to, CELERY, "failed")),
            pair(get(to, RQ, "failed")),
            "",
            "≤ 200",
            verdict(p99(d, "failed") <= 0.2),
        ],
        [
            "timeout: deadline → replacement ready, p50 / p99 (ms)",
            pair(d.get("ready")),
            pair(get(to, CELERY, "ready")),
            pair(get(to, RQ, "ready")),
            "",
            "≤ 500",
            verdict(p99(d, "ready") <= 0.5),
        ],
        [
            "timeout: the export's `sleep 1000` left behind",
            left(d),
            left(to.get(CELERY)),
            left(to.get(RQ)),
            "",
            "never",
            verdict(bool(d) and d.get("left_behind") == 0 and di.get("left_behind", 0) == 0),
        ],
        [
            f"timeout, export ignoring SIGTERM (kill_grace {grace:g} s): → FAILED; → replacement (ms)",
            f"{pair(di.get('failed'))}; {pair(di.get('ready'))}",
            "n/a",
            "n/a",
            "",
            f"≤ 200; ≤ {1000 * grace + 500:.0f}",
            verdict(p99(di, "failed") <= 0.2 and p99(di, "ready") <= grace + 0.5),
        ],
    ]


def crash_rows(results: dict[str, Any]) -> list[list[str]]:
    cr = results.get("crash")
    if not cr:
        return []
    d = cr.get(DLSV) or {}
    n = get(d, "failed", "n") or 0
    failed_p99 = get(d, "failed", "p99")
    ready_p99 = get(d, "ready", "p99")
    return [
        [
            f"SIGKILL of a busy worker → item marked FAILED, p50 / p99 (ms), n={n}",
            pair(d.get("failed")),
            pair(get(cr, CELERY, "failed"), n),
            pair(get(cr, RQ, "failed"), n),
            "",
            "≤ 100",
            verdict(failed_p99 is not None and failed_p99 <= 0.1),
        ],
        [
            "SIGKILL → replacement ready, p50 / p99 (ms)",
            pair(d.get("ready")),
            pair(get(cr, CELERY, "ready"), n),
            pair(get(cr, RQ, "ready"), n),
            "",
            "≤ 300",
            verdict(ready_p99 is not None and ready_p99 <= 0.3),
        ],
    ]


def startup_rows(results: dict[str, Any]) -> list[list[str]]:
    starts = results.get("startups") or {}
    if not starts:
        return []

    def cell(name: str) -> str:
        values = sorted(starts.get(name, []))
        if not values:
            return "—"
        return f"{ms(values[len(values) // 2])} (max {ms(values[-1])}, n={len(values)})"

    values = sorted(starts.get(DLSV, []))
    median = values[len(values) // 2] if values else None
    return [
        [
            "start → all 4 workers ready, median (ms)",
            cell(DLSV),
            cell(CELERY),
            cell(RQ),
            "",
            "≤ 500",
            verdict(None if median is None else median <= 0.5),
        ]
    ]


def scale_rows(results: dict[str, Any]) -> list[list[str]]:
    sc = results.get("scale")
    if not sc:
        return []

    def reads(counters: dict[str, int]) -> str:
        handler = sum(v for k, v in counters.items() if k.startswith("Handler_read"))
        return (
            f"Rows_read {counters['Rows_read']:,}, Handler_read_* {handler:,}, "
            f"{counters['Questions']} statements"
        )

    history = f"{sc['history']:,}"
    return [
        [
            f"scheduler idle pass, {history} finished rows per table",
            f"{reads(sc['idle']['counters'])}; {sc['idle_ms']['p50']:.1f} ms",
            "n/a",
            "n/a",
            "",
            "active rows only",
            "",
        ],
        [
            "scheduler pass dispatching 1,000 tasks",
            f"{reads(sc['dispatch']['counters'])}; {sc['dispatch']['ms']:.0f} ms",
            "n/a",
            "n/a",
            "",
            "in proportion to the 1,000",
            "",
        ],
    ]


def idle_rows(results: dict[str, Any]) -> list[list[str]]:
    idle = results.get("idle")
    if not idle:
        return []

    def cpu(name: str) -> str:
        shares = get(idle, name, "cpu_percent") or {}
        if not shares:
            return "—"
        parts = ", ".join(f"{role} {value:.2f}" for role, value in shares.items() if role != "total")
        return f"{shares['total']:.2f} ({parts})"

    def memory(name: str) -> str:
        total = get(idle, name, "memory_mb", "total")
        return "—" if not total else f"{total['rss']:.0f} / {total['pss']:.0f}"

    def wakes(name: str) -> str:
        value = get(idle, name, "wakeups_per_s")
        return "—" if value is None else f"{value:.1f}"

    d_cpu = get(idle, DLSV, "cpu_percent", "total")
    d_rss = get(idle, DLSV, "memory_mb", "total", "rss")
    reference = get(idle, "reference: sleep(0.5) loop", "cpu_percent", "total")
    per_wake = idle.get("ms_per_wakeup")
    calibration = (
        f"; a process that only sleeps 0.5 s in a loop used {reference:.2f}% "
        f"({per_wake:.2f} ms per wake-up) in the same window"
        if reference is not None and per_wake is not None
        else ""
    )
    return [
        [
            "idle wake-ups per second (voluntary context switches)",
            wakes(DLSV),
            wakes(CELERY),
            wakes(RQ),
            "",
            "",
            "",
        ],
        [
            f"idle CPU over {idle['seconds']:.0f} s, % of one core{calibration}",
            cpu(DLSV),
            cpu(CELERY),
            cpu(RQ),
            "",
            "≤ 0.5",
            verdict(None if d_cpu is None else d_cpu <= 0.5),
        ],
        [
            "idle memory, summed RSS / PSS (MB)",
            memory(DLSV),
            memory(CELERY),
            memory(RQ),
            "",
            "RSS ≤ 150",
            verdict(None if d_rss is None else d_rss <= 150),
        ],
    ]
