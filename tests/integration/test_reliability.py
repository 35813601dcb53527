"""Leases, attempts and the election (contract.md §5, architecture.md, invariants 2, 5 and 6), one loop at a
time against the real backends; the multiprocess versions are in tests/process."""

from __future__ import annotations

import multiprocessing
import socket
import time
import traceback
from collections import Counter

import pytest

from dlsupervisor import config, handlers, remarks
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.queue import open_queue
from dlsupervisor.scheduler import Scheduler
from dlsupervisor.store import open_store
from dlsupervisor.worker import Worker
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

FORK = multiprocessing.get_context("fork")


def test_each_requeue_is_counted_in_the_database_and_the_third_gives_up(env):
    scheduler = env.scheduler()
    env.worker().register()
    lease = env.settings.scheduler.lease
    task_id, (item_id,) = env.new_task({"do": "ok"})
    scheduler.tick()
    seen = []
    for host in ("host-a", "host-b", "host-c"):
        assert env.store.claim(item_id, remarks.owner(host, 1234), 15) is not None
        env.db.age("download_item", item_id, lease + 1)  # its host died: no more heartbeats
        assert scheduler.tick().requeued == 1
        item = env.db.item(item_id)
        seen.append((item["status"], item["remark"]))
    reason = f"owner lost (no heartbeat for {lease:g}s)"
    assert seen == [
        (ItemStatus.READY, f"requeued: {reason} (attempt 1 of 3)"),
        (ItemStatus.READY, f"requeued: {reason} (attempt 2 of 3)"),
        (ItemStatus.FAILED, f"gave up: {reason} (requeued 3 times)"),
    ]
    scheduler.tick()
    assert env.db.task(task_id)["status"] == TaskStatus.FAILED


def test_an_item_whose_owner_heartbeats_is_never_taken(env):
    env.write_config(scheduler={"lease": 1})
    scheduler = env.scheduler()
    task_id, (item_id,) = env.new_task({"do": "ok"})
    token = env.store.claim(item_id, remarks.owner("busy-host", 99), 15).token
    for _ in range(3):
        env.db.age("download_item", item_id, 0.9)  # close to the lease, but not past it
        env.store.heartbeat([item_id], [])  # the owner's master says it is alive
        assert scheduler.tick().requeued == 0
    item = env.db.item(item_id)
    assert (item["status"], item["remark"]) == (ItemStatus.PROCESSING, token)


def test_one_scheduler_leads_and_another_takes_over_when_it_goes(env):
    first, second = env.scheduler(), env.scheduler()
    assert first.tick() is not None and first.leading
    assert second.tick() is None and not second.leading
    first.election.release()
    first.store.close()  # its connection (and any lock on it) gone, as when it dies
    assert wait_until(lambda: second.tick() is not None, timeout=15, what="a new leader")
    assert second.leading


# -- two schedulers at once --------------------------------------------------------------


class Always:
    """No election: both schedulers act on every pass (the overlap a lease handover allows)."""

    def hold(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _child(role: str, config_path: str, report: str, stop, deadline: float) -> None:
    try:
        settings = config.load(config_path)
        store = open_store(settings.database)
        work_queue = open_queue(settings, store)
        if role == "scheduler":
            Scheduler(settings, store, work_queue, Always()).run(
                lambda: stop.is_set() or time.monotonic() > deadline
            )
            return
        sub = settings.subtype(role)
        cls, info = handlers.load(settings, sub)
        worker = Worker(
            settings,
            sub,
            handlers.registration(sub, info),
            handlers.construct(cls, info, settings),
            store,
            work_queue,
            host=socket.gethostname(),
        )
        while not stop.is_set() and time.monotonic() < deadline:
            worker.run_once(timeout=0.1)
    except BaseException:
        with open(report, "a") as out:
            out.write(traceback.format_exc())
        raise SystemExit(1) from None


def test_two_schedulers_at_once_are_harmless(env, tmp_path):
    """Invariant 2: with no election at all, two schedulers never double or lose anything."""
    markers = tmp_path / "markers"
    singles = [env.new_task({"do": "ok", "log": str(markers)})[0] for _ in range(150)]
    multis = [env.new_task({"parts": 3, "log": str(markers)}, sub_type=16, items=0)[0] for _ in range(20)]
    stop = FORK.Event()
    deadline = time.monotonic() + 90
    roles = ["scheduler", "scheduler", "behaviour", "behaviour", "multi"]
    children = [
        FORK.Process(
            target=_child, args=(role, str(env.config_path), str(tmp_path / f"{n}.report"), stop, deadline)
        )
        for n, role in enumerate(roles)
    ]
    try:
        for child in children:
            child.start()

        def finished():
            rows = env.db.execute("SELECT status, COUNT(*) AS n FROM download_task_main GROUP BY status")
            return {r["status"]: r["n"] for r in rows} == {TaskStatus.DONE: 170}

        wait_until(
            finished,
            timeout=80,
            interval=0.2,
            what="every task DONE",
            context=lambda: str(
                env.db.execute("SELECT status, COUNT(*) n FROM download_task_main GROUP BY status")
            ),
        )
    finally:
        stop.set()
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join(5)
    reports = [p.read_text() for p in tmp_path.glob("*.report")]
    assert not reports, reports
    assert all(child.exitcode == 0 for child in children)
    starts = Counter(line.split()[1] for line in markers.read_text().splitlines() if line.startswith("START"))
    assert len(starts) == 150 + 60 and set(starts.values()) == {1}, "an item ran twice"
    splits = Counter(line.split()[1] for line in markers.read_text().splitlines() if line.startswith("SPLIT"))
    assert set(splits) == {str(t) for t in multis}
    for task_id in multis:
        assert len(env.db.items_of(task_id)) == 3, "a task was split twice"
    assert all(env.db.task(t)["status"] == TaskStatus.DONE for t in singles)
