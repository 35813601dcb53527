"""Rows an application inserts while workers run are dispatched when a worker runs dry,
not at the scheduler's next poll (architecture.md, "Processes").  The nudge travels
through Redis; without it the scheduler's poll dispatches them (README, "How it works")."""

from __future__ import annotations

import pytest

from dlsupervisor.model import ItemStatus
from tests.helpers.wait import wait_until
from tests.process.test_daemon import config, submit


def test_rows_inserted_while_workers_run_start_when_a_worker_runs_dry_not_at_the_next_poll(env, daemon):
    """poll_interval 60 s: after the start-up passes, only a worker's nudge (Redis) or the
    rows can be handed out within the deadline."""
    if env.redis_url is None:
        pytest.skip("the nudge is a Redis list; without Redis the poll dispatches inserted rows")
    d = daemon(**config(workers=2, scheduler={"poll_interval": 60})).start()
    _, running = submit(env, {"do": "sleep", "seconds": 0.5})  # sent at once, not polled
    d.wait_item(running, timeout=20, status=ItemStatus.PROCESSING)
    inserted = [env.new_task({"do": "ok"})[1][0] for _ in range(3)]
    wait_until(
        lambda: all(env.db.item(i)["status"] == ItemStatus.DONE for i in inserted),
        timeout=20,
        interval=0.1,
        what="the inserted rows done well before the next poll",
        context=lambda: f"{[env.db.item(i)['status'] for i in inserted]}\n{d.context()}",
    )
