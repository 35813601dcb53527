"""Leases, orphan recovery and the election across supervisors sharing one database
(contract.md §4-§5, architecture.md, invariants 5 and 6), with real daemons and real SIGKILLs."""

from __future__ import annotations

import signal
import time

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus
from tests.helpers.daemon import gone
from tests.helpers.wait import wait_until
from tests.process.test_daemon import busy_pid, config, marker_lines, submit

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

LEASE = 2


def pair(daemon, **scheduler):
    """Two supervisors on one database and Redis, with a short lease."""
    settings = config(workers=1, timeout=30, scheduler={"lease": LEASE, "redispatch_after": 0.5, **scheduler})
    first = daemon("a", **settings).start()
    second = daemon("b", **settings).start()
    return first, second


def owner(daemons, item_id):
    def probe():
        for d in daemons:
            for child in d.children().values():
                if child["item"] == item_id:
                    return d, child["pid"]
        return None

    return wait_until(probe, what=f"the supervisor running item {item_id}")


def test_items_of_a_killed_master_are_requeued_after_the_lease_and_run_again(env, daemon, tmp_path):
    first, second = pair(daemon)
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "hang_once", "log": str(log)})
    victim, worker = owner([first, second], item_id)
    survivor = second if victim is first else first
    victim.signal(signal.SIGKILL)  # the master, and with it its host's view of the item
    victim.wait_exit()
    wait_until(lambda: gone(worker), timeout=5, what="the orphaned worker gone")
    assert env.db.item(item_id)["status"] == ItemStatus.PROCESSING
    item = survivor.wait_task(task_id, status=TaskStatus.DONE, timeout=LEASE + 15)
    assert item and len(marker_lines(log, "START")) == 2
    assert victim.session_pids() == []


def test_a_slow_export_that_is_heartbeating_is_never_taken(env, daemon, tmp_path):
    first, second = pair(daemon)
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "sleep", "seconds": LEASE * 2.5, "log": str(log)})
    owner([first, second], item_id)
    first.wait_task(task_id, status=TaskStatus.DONE, timeout=LEASE * 2.5 + 10)
    assert len(marker_lines(log, "START")) == 1
    assert env.db.item(item_id)["remark"] is None


def test_when_the_leading_scheduler_dies_another_takes_over_within_the_lease(env, daemon):
    first, second = pair(daemon)

    def elected(d):
        return d.log_tail(100_000).count("scheduler: elected")

    wait_until(lambda: elected(first) + elected(second) == 1, what="one leader")
    leader, standby = (first, second) if elected(first) else (second, first)
    for _ in range(3):  # the standby keeps standing by
        task_id, _ = env.new_task({"do": "ok"})
        standby.wait_task(task_id, status=TaskStatus.DONE)
    assert elected(standby) == 0
    killed_at = time.monotonic()
    leader.signal(signal.SIGKILL)
    leader.wait_exit()
    wait_until(
        lambda: elected(standby) == 1, timeout=LEASE + 10, what="the standby elected", context=standby.context
    )
    assert time.monotonic() - killed_at <= LEASE + 3
    task_id, _ = env.new_task({"do": "ok"})  # dispatched by the new leader's poll
    standby.wait_task(task_id, status=TaskStatus.DONE)
    wait_until(lambda: leader.session_pids() == [], timeout=5, what="the old leader's children gone")


def test_cancelling_a_task_kills_its_running_export_and_cancels_the_rest(env, daemon, tmp_path):
    d = daemon(**config(workers=1)).start()
    log = tmp_path / "markers"
    data = {"parts": 3, "do": "grandchild", "log": str(log)}
    with_items = env.new_task(data, sub_type=16, items=0)[0]
    wait_until(lambda: marker_lines(log, "GRANDCHILD"), what="the first item running", context=d.context)
    items = env.db.items_of(with_items)
    running = next(i["id"] for i in items if i["status"] == ItemStatus.PROCESSING)
    pid = busy_pid(d, running)
    grandchild = int(marker_lines(log, "GRANDCHILD")[0][1])
    started = time.monotonic()
    d.cli("cancel", str(with_items))
    wait_until(lambda: gone(pid) and gone(grandchild), timeout=2, what="the export's tree killed")
    assert time.monotonic() - started < 2
    wait_until(
        lambda: all(i["status"] == ItemStatus.CANCELLED for i in env.db.items_of(with_items)),
        what="every item CANCELLED",
    )
    assert all(i["remark"] == "cancelled" for i in env.db.items_of(with_items))
    assert env.db.task(with_items)["status"] == TaskStatus.CANCELLED
    assert len(marker_lines(log, "START")) == 1
