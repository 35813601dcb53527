"""RQ: `workers` separate `rq.Worker` processes (bench/peers/rq_worker.py), a horse forked per job."""

from __future__ import annotations

import time
from typing import Any

import redis
from rq import Callback, Queue

from bench import procs
from bench.peers.rq_jobs import export_item, record_failure
from bench.systems import record_startup
from bench.world import World


class RqPeer:
    name = "RQ"
    finds_rows = False  # an application enqueues a job per row it inserts

    def __init__(
        self, world: World, *, label: str = "rq", workers: int = 4, timeout: int | None = None
    ) -> None:
        self.world = world
        self.label = label
        self.workers = workers
        self.timeout = timeout  # job_timeout (whole seconds: RQ arms SIGALRM)
        self.db_url = world.database(label)
        self.queue_name = f"bench-{world.run_id}-{label}"
        self.names = [f"bench-{world.run_id}-{label}-{n}" for n in range(1, workers + 1)]
        self.launched: list[procs.Launched] = []
        self.connection = redis.Redis.from_url(world.redis_url)
        self.queue = Queue(self.queue_name, connection=self.connection)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> float:
        env = {"BENCH_DB_URL": self.db_url, "BENCH_BROKER_URL": self.world.redis_url}
        log = self.world.tmp / f"{self.label}.log"
        started = time.time()
        for name in self.names:
            argv = ["-m", "bench.peers.rq_worker", name, self.queue_name]
            self.launched.append(procs.launch(name, argv, log, env))
        self.world.on_close(self.stop)
        procs.wait_until(
            lambda: all(self.state(name) in ("idle", "busy") for name in self.names),
            30,
            "RQ workers idle",
            interval=0.005,
        )
        return record_startup(self.world, self.name, time.time() - started)

    def stop(self) -> None:
        for launched in self.launched:
            procs.stop(launched)
        self.launched = []

    def state(self, name: str) -> str | None:
        value = self.connection.hget(f"rq:worker:{name}", "state")
        return value.decode() if value else None

    # -- work --------------------------------------------------------------------------

    def enqueue(self, item_ids: list[int], data: dict[str, Any]) -> None:
        options = {"result_ttl": 0, "on_failure": Callback(record_failure)}
        if len(item_ids) == 1:  # what an application does for one job
            job_id = self.job_id(item_ids[0])
            self.queue.enqueue(
                export_item, item_ids[0], data, job_timeout=self.timeout, job_id=job_id, **options
            )
            return
        jobs = [
            Queue.prepare_data(
                export_item, args=(i, data), timeout=self.timeout, job_id=self.job_id(i), **options
            )
            for i in item_ids
        ]
        for start in range(0, len(jobs), 1000):
            self.queue.enqueue_many(jobs[start : start + 1000])

    def job_id(self, item_id: int) -> str:
        """Job ids carry the run id, so the run's cleanup finds every key RQ made for them."""
        return f"{self.queue_name}-{item_id}"

    # -- processes ---------------------------------------------------------------------

    def export_pids(self) -> set[int]:
        """The horses running jobs now."""
        return {pid for launched in self.launched for pid in procs.children(launched.pid)}

    def replaced(self, before: set[int]) -> float | None:
        """Now, if every worker is idle again (one job runs at a time here): ready to fork a horse."""
        if all(self.state(w.name) == "idle" for w in self.launched):
            return time.time()
        return None

    def processes(self) -> dict[str, list[int]]:
        return {"workers": [launched.pid for launched in self.launched]}
