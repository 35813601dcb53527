"""GET /metrics: a prometheus_client Collector that reads durable state at scrape time.

Nothing is counted in this process, so a restarted web child (or two of them) reports
the same numbers, with no multiprocess files: outcomes and export times come from the
additive dlsupervisor_counter table (counters.py), the READY/PROCESSING gauges from
the active rows, workers and restarts from the master's status file.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

from dlsupervisor import counters, statusfile
from dlsupervisor.model import ItemStatus
from dlsupervisor.web import http


class StateCollector:
    """One scrape: a few indexed queries and one small file read."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only; prometheus_client then skips the dry run

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        names = self.app.subtype_names()
        store = self.app.store()

        def label(sub_type: Any) -> str:
            return names.get(sub_type, str(sub_type))

        rows = store.counter_values()
        items = CounterMetricFamily("dlsupervisor_items", "Items by outcome", labels=["subtype", "outcome"])
        seen = {
            (label(r["sub_type"]), r["name"][len("items:") :]): r["value"]
            for r in rows
            if r["name"].startswith("items:")
        }
        for subtype in sorted({s for s, _ in seen} | set(names.values())):
            for outcome in counters.OUTCOMES:
                items.add_metric([subtype, outcome], seen.get((subtype, outcome), 0.0))
        yield items
        yield self.durations(rows, label)
        ready = GaugeMetricFamily("dlsupervisor_items_ready", "READY items", labels=["subtype"])
        processing = GaugeMetricFamily(
            "dlsupervisor_items_processing", "PROCESSING items", labels=["subtype"]
        )
        oldest = GaugeMetricFamily(
            "dlsupervisor_oldest_ready_seconds", "Age of the oldest READY item", labels=["subtype"]
        )
        now = dt.datetime.now(dt.timezone.utc)
        for row in store.active_counts():
            target = ready if row["status"] == ItemStatus.READY else processing
            target.add_metric([label(row["sub_type"])], row["n"])
            if row["status"] == ItemStatus.READY and isinstance(row["oldest"], dt.datetime):
                created = (
                    row["oldest"] if row["oldest"].tzinfo else row["oldest"].replace(tzinfo=dt.timezone.utc)
                )
                oldest.add_metric([label(row["sub_type"])], max(0.0, (now - created).total_seconds()))
        yield from (ready, processing, oldest)
        yield from self.children()

    def durations(self, rows: list[dict[str, Any]], label: Any) -> Any:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(
            "dlsupervisor_item_duration_seconds", "Export time of items", labels=["subtype"]
        )
        by_sub: dict[Any, dict[str, float]] = {}
        for row in rows:
            if row["name"].startswith("duration:"):
                by_sub.setdefault(row["sub_type"], {})[row["name"]] = row["value"]
        for sub_type, values in sorted(by_sub.items(), key=lambda kv: str(kv[0])):
            count = values.get(counters.DURATION_COUNT, 0.0)
            buckets = [(f"{b:g}", values.get(counters.bucket_name(b), 0.0)) for b in counters.BUCKETS]
            family.add_metric(
                [label(sub_type)], [*buckets, ("+Inf", count)], values.get(counters.DURATION_SUM, 0.0)
            )
        return family

    def children(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        status = statusfile.read(os.path.join(self.app.settings.supervisor.run_dir, "status.json")) or {}
        workers: Counter[tuple[str, str]] = Counter()
        restarts: Counter[tuple[str, str]] = Counter()
        for child in status.get("children", []):
            subtype = child.get("subtype") or ""
            if child.get("role") == "worker":
                workers[(subtype, str(child.get("state")))] += 1
            restarts[(str(child.get("role")), subtype)] += child.get("restarts") or 0
        gauge = GaugeMetricFamily("dlsupervisor_workers", "Workers by state", labels=["subtype", "state"])
        for labels, n in sorted(workers.items()):
            gauge.add_metric(list(labels), n)
        counter = CounterMetricFamily(
            "dlsupervisor_child_restarts", "Restarts of the master's children", labels=["role", "subtype"]
        )
        for labels, n in sorted(restarts.items()):
            counter.add_metric(list(labels), n)
        yield from (gauge, counter)


def serve(app: Any, start: http.StartResponse) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(app))
    return http.respond(start, 200, generate_latest(registry), CONTENT_TYPE_LATEST)
