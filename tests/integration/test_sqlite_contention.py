"""One SQLite file under load: eight worker processes and a scheduler, each with its own
store, run 2,000 single-item tasks through the polled queue while the application keeps
inserting (half by SQL, half through Client.submit's transaction) and the scheduler
expires old files.  Every item runs exactly once, every task finishes, and no process
ever sees "database is locked": writers wait on the busy timeout, and read-then-write
transactions (submit, expiry) take the write lock up front.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time
import traceback
from collections import Counter
from pathlib import Path

from dlsupervisor import config, handlers
from dlsupervisor.client import Client
from dlsupervisor.election import StoreElection
from dlsupervisor.queue import open_queue
from dlsupervisor.scheduler import Scheduler
from dlsupervisor.store import open_store
from dlsupervisor.worker import Worker
from tests.helpers.wait import wait_until

WORKERS = 8
TASKS = 2000  # to export: half inserted by SQL, half through Client.submit
EXPIRING = 400  # finished tasks whose files are past expire_time: the scheduler expires them
ROUNDS = 40  # the application inserts in turns while the workers and the scheduler run
BATCH = 100  # tasks the application inserts per SQL transaction
LONG_AGO = "2001-02-03 04:05:06.000"
DEADLINE = 90.0  # a child gives up on its own after this, should the test die
FORK = multiprocessing.get_context("fork")


# -- the children (they run after fork; each opens its own store) --------------------------


def _child(role: str, config_path: str, report: str, stop, deadline: float) -> None:
    """Run one loop until `stop` is set; WARNING and above, and any exception, go to `report`."""
    handler = logging.FileHandler(report)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        settings = config.load(config_path)
        run = _scheduler_loop(settings) if role == "scheduler" else _worker_loop(settings)
        run(lambda: stop.is_set() or time.monotonic() > deadline)
    except BaseException:
        with open(report, "a", encoding="utf-8") as out:
            out.write(traceback.format_exc())
        raise SystemExit(1) from None
    finally:
        handler.flush()


def _scheduler_loop(settings):
    """The scheduler's own loop (an outage is logged as a warning, and the pass retried)."""
    store = open_store(settings.database)
    scheduler = Scheduler(settings, store, open_queue(settings, store), StoreElection(store, "dlsv", 10))
    return scheduler.run


def _worker_loop(settings):
    sub = settings.subtype("behaviour")
    cls, info = handlers.load(settings, sub)
    store = open_store(settings.database)
    worker = Worker(
        settings,
        sub,
        handlers.registration(sub, info),
        handlers.construct(cls, info, settings),
        store,
        open_queue(settings, store),
        host=socket.gethostname(),
    )

    def run(should_stop) -> None:
        while not should_stop():
            worker.run_once(timeout=0.2)

    return run


# -- the test ------------------------------------------------------------------------------


def _insert_by_sql(env, count: int, data: dict, **cols) -> list[int]:
    """Insert tasks the way an application does, BATCH per transaction; return the item ids."""
    item_ids: list[int] = []
    for start in range(0, count, BATCH):
        env.db.execute("BEGIN IMMEDIATE")
        for _ in range(min(BATCH, count - start)):
            item_ids += env.new_task(data, **cols)[1]
        env.db.execute("COMMIT")
    return item_ids


def _submit(env, count: int, data: dict) -> list[int]:
    """Through the API: one store transaction per task (BEGIN IMMEDIATE); return the item ids."""
    with Client(env.settings) as client:
        task_ids = [client.submit("behaviour", 7, data) for _ in range(count)]
    marks = ", ".join(["%s"] * len(task_ids))
    rows = env.db.execute(f"SELECT id FROM download_item WHERE task_id IN ({marks})", task_ids)
    return [row["id"] for row in rows]


def _insert_expiring(env, count: int) -> None:
    """Finished tasks whose only file expired long ago."""
    for item_id in _insert_by_sql(env, count, {"do": "ok"}, status=2):
        env.db.execute(
            "UPDATE download_item SET status = 2, expire_time = %s WHERE id = %s", (LONG_AGO, item_id)
        )


def _apply_load(env, data: dict) -> list[int]:
    """Work and history arriving in turns while the workers and the scheduler run."""
    item_ids: list[int] = []
    for _ in range(ROUNDS):
        item_ids += _insert_by_sql(env, TASKS // 2 // ROUNDS, data)
        _insert_expiring(env, EXPIRING // ROUNDS)
        item_ids += _submit(env, TASKS // 2 // ROUNDS, data)
    return item_ids


def _counts(env) -> dict[str, int]:
    rows = env.db.execute(
        "SELECT 'item' AS kind, status, COUNT(*) AS n FROM download_item GROUP BY status "
        "UNION ALL SELECT 'task', status, COUNT(*) FROM download_task_main GROUP BY status"
    )
    return {f"{r['kind']}:{r['status']}": r["n"] for r in rows}


def _all_done(env, expected: dict[str, int], children, reports: list[Path]) -> bool:
    """The counts reached; fail at once if a child died before."""
    dead = {child.name: child.exitcode for child in children if child.exitcode is not None}
    assert not dead, f"children exited early: {dead}\n{_reports(reports)}"
    return _counts(env) == expected


def _reports(paths: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in paths if p.exists() and p.read_text())


def test_eight_workers_and_a_scheduler_share_one_sqlite_file(sqlite_env, tmp_path):
    env = sqlite_env
    env.write_config(subtypes={"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": 1}})
    markers = tmp_path / "markers"
    stop = FORK.Event()
    deadline = time.monotonic() + DEADLINE
    roles = ["scheduler"] + [f"worker{n}" for n in range(WORKERS)]
    reports = [tmp_path / f"{role}.report" for role in roles]
    children = [
        FORK.Process(
            target=_child,
            args=("scheduler" if role == "scheduler" else "worker", str(env.config_path), str(report)),
            kwargs={"stop": stop, "deadline": deadline},
            name=role,
        )
        for role, report in zip(roles, reports, strict=True)
    ]
    try:
        for child in children[1:]:
            child.start()
        # The scheduler starts once a worker has registered, so it never warns of an unserved subtype.
        wait_until(lambda: env.store.registrations(30), timeout=20, what="a worker registered")
        children[0].start()
        item_ids = _apply_load(env, {"do": "ok", "log": str(markers)})
        expected = {"item:2": TASKS, "task:2": TASKS, "item:3": EXPIRING, "task:3": EXPIRING}
        wait_until(
            lambda: _all_done(env, expected, children, reports),
            timeout=60,
            interval=0.2,
            what="every item and task DONE, every old file EXPIRED",
            context=lambda: f"{_counts(env)}\n{_reports(reports)}",
        )
        stop.set()
        for child in children:
            child.join(timeout=10)
    finally:
        stop.set()
        for child in children:
            if child.is_alive():
                child.kill()  # by pid
                child.join(timeout=5)

    problems = _reports(reports)
    assert "database is locked" not in problems, problems
    assert problems == "", f"children logged warnings or raised:\n{problems}"
    assert {child.name: child.exitcode for child in children} == {role: 0 for role in roles}
    starts = Counter(
        int(line.split()[1]) for line in markers.read_text().splitlines() if line.startswith("START")
    )
    assert set(starts) == set(item_ids)
    assert [item for item, n in starts.items() if n != 1] == [], "an item ran more than once"
