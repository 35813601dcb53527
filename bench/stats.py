"""Percentiles and the CPU and memory of process trees."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence

import psutil


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p99 and max of `values` (seconds)."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of these processes, including their children already reaped."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def wakeups(pids: Iterable[int]) -> int:
    """Voluntary context switches: how often these processes blocked, and so woke up again."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).num_ctx_switches().voluntary
    return total


def memory_mb(pids: Iterable[int]) -> dict[str, float]:
    """Summed RSS, PSS and USS (MB): RSS counts pages forked children share once per process."""
    rss = pss = uss = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", 0)
            uss += info.uss
    return {"rss": rss / 1e6, "pss": pss / 1e6, "uss": uss / 1e6}
