"""Back-to-back items: while wake-ups are queued, a worker records each outcome in the
same transaction (one round trip on MySQL) as the claim of the next (worker.py)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from dlsupervisor.model import ItemStatus
from dlsupervisor.store import Outcome, Recording
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)


def queued(env, count, data):
    """`count` single-item tasks, dispatched (their wake-ups queued)."""
    scheduler, worker = env.scheduler(), env.worker()
    worker.register()
    items = [env.new_task(data)[1][0] for _ in range(count)]
    assert scheduler.tick().dispatched == count
    return worker, items


def statuses(env, items):
    return [env.db.item(i)["status"] for i in items]


def test_queued_items_run_back_to_back_in_one_turn_each_recorded(env):
    worker, items = queued(env, 3, {"do": "ok"})
    assert worker.run_once(timeout=2)
    assert statuses(env, items) == [ItemStatus.DONE] * 3
    assert worker.items_done == 3
    assert all(env.db.item(i)["remark"] is None for i in items)


def test_the_item_before_max_items_takes_no_next_one(env):
    worker, items = queued(env, 2, {"do": "ok"})
    worker.sub = dataclasses.replace(worker.sub, max_items=1)
    assert worker.run_once(timeout=2)
    assert sorted(statuses(env, items)) == [ItemStatus.READY, ItemStatus.DONE]
    assert worker.recycle_reason() == "max_items 1"
    other = env.worker()  # the wake-up stayed queued for another worker
    assert other.run_once(timeout=2)
    assert statuses(env, items) == [ItemStatus.DONE] * 2


def test_a_stop_asked_during_an_export_leaves_the_next_item_queued(env):
    _, items = queued(env, 2, {"do": "sleep", "seconds": 0.3})  # well inside CHAIN_FOR
    made, ran = [], []

    def work():  # a worker of its own thread (SQLite connections stay in theirs)
        made.append(env.worker())
        ran.append(made[0].run_once(timeout=2))

    runner = threading.Thread(target=work)
    runner.start()
    wait_until(lambda: ItemStatus.PROCESSING in statuses(env, items), timeout=10, what="an export running")
    made[0].stop.requested = True
    runner.join(10)
    assert ran == [True]
    assert sorted(statuses(env, items)) == [ItemStatus.READY, ItemStatus.DONE]
    other = env.worker()
    assert other.run_once(timeout=3)
    assert statuses(env, items) == [ItemStatus.DONE] * 2


def test_the_record_holds_when_the_next_item_was_taken_by_another_worker(env):
    worker, (first, second) = queued(env, 2, {"do": "ok"})
    store = worker.store
    mine = store.claim(first, "host-a:1", 15)
    theirs = store.claim(second, "host-b:2", 15)
    done = Recording(first, mine.token, Outcome(ItemStatus.DONE, url="u", md5="m", file_name="f"), 60)
    recorded, claim = store.record_and_claim(done, second, "host-a:1", 15)
    assert (recorded, claim) == (True, None)
    assert env.db.item(first)["status"] == ItemStatus.DONE
    row = env.db.item(second)
    assert (row["status"], row["remark"]) == (ItemStatus.PROCESSING, theirs.token)


def test_a_record_whose_claim_was_taken_over_still_claims_the_next(env):
    """Both statements stand alone: the fence refuses the stale record, the claim goes on."""
    worker, (first, second) = queued(env, 2, {"do": "ok"})
    store = worker.store
    stale = store.claim(first, "host-a:1", 15)
    env.db.execute("UPDATE download_item SET remark = 'running on other:9 attempt 2' WHERE id = %s", (first,))
    done = Recording(first, stale.token, Outcome(ItemStatus.DONE, url="u", md5="m", file_name="f"), 60)
    recorded, claim = store.record_and_claim(done, second, "host-a:1", 15)
    assert recorded is False and claim is not None and claim.item.id == second
    assert env.db.item(first)["status"] == ItemStatus.PROCESSING
    assert env.db.item(second)["remark"] == claim.token
