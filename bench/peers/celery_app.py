"""The Celery side: one task doing dlsupervisor's per-item work, acks_late, Redis broker.

Run by `celery -A bench.peers.celery_app worker` with its settings in the
environment (BENCH_BROKER_URL, BENCH_PREFIX, BENCH_QUEUE, BENCH_DB_URL,
BENCH_TIME_LIMIT); the benchmark sends tasks by name with `make_app()`.

A failure Celery sees in its main process (hard time limit, a pool process
lost) is written to the item through the `task_failure` signal, the way an
application would record it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, signals
from celery.exceptions import TimeLimitExceeded, WorkerLostError

from bench import dbwork
from bench.exports import report, run_export

TASK = "bench.export_item"


def make_app(broker: str, prefix: str, queue: str, time_limit: float | None = None) -> Celery:
    app = Celery("bench", broker=broker)
    app.conf.update(
        broker_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue,
        task_acks_late=True,
        task_ignore_result=True,
        task_time_limit=time_limit,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return app


app = make_app(
    os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12"),
    os.environ.get("BENCH_PREFIX", "dlb:celery:"),
    os.environ.get("BENCH_QUEUE", "bench"),
    float(os.environ["BENCH_TIME_LIMIT"]) if os.environ.get("BENCH_TIME_LIMIT") else None,
)


@app.task(name=TASK, acks_late=True)
def export_item(item_id: int, data: dict[str, Any]) -> None:
    conn = dbwork.connection()
    claim_token = dbwork.token()
    if not dbwork.claim(conn, item_id, claim_token):
        return
    run_export(item_id, data)
    dbwork.succeed(conn, item_id, claim_token)


@signals.task_failure.connect
def record_failure(sender=None, task_id=None, exception=None, args=None, **kwargs) -> None:
    if isinstance(exception, TimeLimitExceeded):
        remark = f"timeout: {exception}"
    elif isinstance(exception, WorkerLostError):
        remark = f"worker died: {exception}"
    else:
        remark = f"export failed: {type(exception).__name__}: {exception}"
    dbwork.fail(dbwork.connection(), args[0], remark)


@signals.worker_process_init.connect
def pool_process_ready(**kwargs: Any) -> None:
    """A pool process is up: the benchmark times replacements by this."""
    report_ready("pool")


@signals.worker_ready.connect
def consumer_ready(**kwargs: Any) -> None:
    report_ready("main")


def report_ready(role: str) -> None:
    data = {"redis": os.environ["BENCH_BROKER_URL"], "events": os.environ["BENCH_EVENTS"]}
    report(data, {"kind": "ready", "role": role, "pid": os.getpid(), "t": time.time()})
