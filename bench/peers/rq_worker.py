"""One RQ worker: `python -m bench.peers.rq_worker NAME QUEUE`.

An `rq.Worker` (a work horse forked per job, logging at INFO as `rq worker`
does) with the job module imported first, so every horse inherits it instead of
importing it again (RQ's own advice for performance), and with
`work_horse_killed_handler` set.  Settings come from the environment
(BENCH_DB_URL, BENCH_BROKER_URL).
"""

from __future__ import annotations

import os
import sys

import redis
from rq import Queue, Worker

from bench.peers import rq_jobs


def main(name: str, queue_name: str) -> None:
    connection = redis.Redis.from_url(os.environ["BENCH_BROKER_URL"])
    worker = Worker(
        [Queue(queue_name, connection=connection)],
        name=name,
        connection=connection,
        work_horse_killed_handler=rq_jobs.horse_killed,
    )
    worker.work(logging_level="INFO")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
