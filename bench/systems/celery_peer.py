"""Celery: one `celery worker`, prefork pool of `workers`, Redis broker, acks_late.

Celery's defaults otherwise (prefetch multiplier 4, log level WARNING), with
`--without-gossip --without-mingle --without-heartbeat`, the usual flags for a
Redis broker.  Tasks are sent by name from a producer app configured the same way.
"""

from __future__ import annotations

from typing import Any

from bench import procs
from bench.peers.celery_app import TASK, make_app
from bench.systems import record_startup
from bench.world import World


class CeleryPeer:
    name = "Celery"
    finds_rows = False  # an application sends a message per row it inserts

    def __init__(
        self, world: World, *, label: str = "celery", workers: int = 4, timeout: float | None = None
    ) -> None:
        self.world = world
        self.label = label
        self.workers = workers
        self.timeout = timeout  # task_time_limit (the hard limit)
        self.db_url = world.database(label)
        self.queue = f"bench-{world.run_id}-{label}"
        self.prefix = f"{world.prefix}{label}:"
        self.producer = make_app(world.redis_url, self.prefix, self.queue)
        self.launched: procs.Launched | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> float:
        """Launch, and wait until the consumer and every pool process said they are ready."""
        env = {
            "BENCH_DB_URL": self.db_url,
            "BENCH_BROKER_URL": self.world.redis_url,
            "BENCH_EVENTS": self.world.events.key,
            "BENCH_PREFIX": self.prefix,
            "BENCH_QUEUE": self.queue,
            "BENCH_TIME_LIMIT": "" if self.timeout is None else str(self.timeout),
        }
        argv = [
            "-m", "celery", "-A", "bench.peers.celery_app", "worker",
            "-P", "prefork", "-c", str(self.workers), "-Q", self.queue,
            "-n", f"{self.queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.launched = procs.launch(self.name, argv, self.world.tmp / f"{self.label}.log", env)
        self.world.on_close(self.stop)
        events = self.world.events
        seen = [
            events.wait(lambda e: e["kind"] == "ready" and e["role"] == "pool", 30, "a Celery pool process")
            for _ in range(self.workers)
        ]
        seen.append(
            events.wait(lambda e: e["kind"] == "ready" and e["role"] == "main", 30, "the Celery consumer")
        )
        ready = max(event["t"] for event in seen) - self.launched.started
        return record_startup(self.world, self.name, ready)

    def stop(self) -> None:
        if self.launched is not None:
            procs.stop(self.launched, timeout=30)
            self.launched = None

    # -- work --------------------------------------------------------------------------

    def enqueue(self, item_ids: list[int], data: dict[str, Any]) -> None:
        for item_id in item_ids:
            self.producer.send_task(TASK, args=(item_id, data), queue=self.queue)

    # -- processes ---------------------------------------------------------------------

    def export_pids(self) -> set[int]:
        """The pool processes."""
        return set(procs.children(self.launched.pid))

    def replaced(self, before: set[int]) -> float | None:
        """When a new pool process (not in `before`) finished its init (worker_process_init)."""
        event = self.world.events.poll(
            lambda e: e["kind"] == "ready" and e["role"] == "pool" and e["pid"] not in before
        )
        return event["t"] if event else None

    def processes(self) -> dict[str, list[int]]:
        return {"main": [self.launched.pid], "workers": procs.children(self.launched.pid)}
