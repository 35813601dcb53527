"""The scheduler's steps against real backends: dispatch, split, roll-up, expiry,
cancellation, re-dispatch, and the original's defects that lived in its loops."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from dlsupervisor.model import ItemStatus, TaskStatus
from tests.helpers.wait import wait_until


def drain(env, scheduler, workers, done, *, timeout=15.0, what="work done"):
    """Alternate scheduler passes and worker turns until `done()` is truthy."""

    def turn():
        scheduler.tick()
        for worker in workers:
            worker.run_once(timeout=0.05)
        return done()

    return wait_until(turn, timeout=timeout, interval=0, what=what)


def start(env, *names):
    workers = [env.worker(name) for name in names or ("behaviour",)]
    for worker in workers:
        worker.register()
    return env.scheduler(), workers


def task_status(env, task_id):
    return env.db.task(task_id)["status"]


def test_single_item_task_is_dispatched_and_rolled_up(env):
    scheduler, workers = start(env)
    task_id, (item_id,) = env.new_task({"do": "ok"})
    report = scheduler.tick()
    assert report.dispatched == 1
    assert task_status(env, task_id) == TaskStatus.PROCESSING
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.DONE)
    assert env.db.item(item_id)["status"] == ItemStatus.DONE


def test_single_item_task_fails_with_its_item(env):
    scheduler, workers = start(env)
    task_id, (item_id,) = env.new_task({"do": "raise", "message": "no rows"})
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.FAILED)
    assert env.db.task(task_id)["remark"] == "export failed: RuntimeError: no rows"


def test_multi_item_task_is_split_by_its_worker_and_rolled_up(env, tmp_path):
    scheduler, workers = start(env, "multi")
    log = tmp_path / "markers"
    task_id, _ = env.new_task({"parts": 3, "log": str(log)}, sub_type=16, items=0)
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.DONE)
    items = env.db.items_of(task_id)
    assert [i["status"] for i in items] == [ItemStatus.DONE] * 3
    assert all(i["type"] == 16 and i["org_id"] == 7 for i in items)
    assert log.read_text().count("SPLIT") == 1
    assert env.db.task(task_id)["remark"] is None


def test_a_split_of_a_task_that_already_has_an_item_keeps_it_and_adds_none(env, caplog):
    worker = env.worker("multi")
    task_id, (kept,) = env.new_task({"parts": 3}, sub_type=16, items=1)
    caplog.set_level(logging.INFO, logger="dlsupervisor.worker")
    assert worker.run_split(task_id) is True
    assert [i["id"] for i in env.db.items_of(task_id)] == [kept], "the split added items"
    assert task_status(env, task_id) == TaskStatus.PROCESSING
    assert f"task {task_id}: already has 1 items; the split's items are not added" in caplog.text


def test_partial_failure_leaves_the_task_done_and_says_how_many_failed(env):
    """defects.md #15: DONE when one file is ready, with the failures in the task's remark."""
    scheduler, workers = start(env, "multi")
    data = {"parts": 3, "part_data": {"1": {"do": "raise"}}}
    task_id, _ = env.new_task(data, sub_type=16, items=0)
    drain(
        env,
        scheduler,
        workers,
        lambda: (
            task_status(env, task_id) != TaskStatus.READY
            and task_status(env, task_id) != TaskStatus.PROCESSING
        ),
    )
    task = env.db.task(task_id)
    assert task["status"] == TaskStatus.DONE
    assert task["remark"] == "2 of 3 files ready, 1 failed"


def test_multi_item_task_fails_when_every_item_failed(env):
    scheduler, workers = start(env, "multi")
    task_id, _ = env.new_task({"parts": 2, "do": "raise", "message": "gone"}, sub_type=16, items=0)
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.FAILED)
    assert env.db.task(task_id)["remark"] == ("all 2 files failed; first: export failed: RuntimeError: gone")


def test_split_that_raises_fails_only_that_task(env):
    """defects.md #14: the original's whole subtype stopped; here the task fails and others go on."""
    scheduler, workers = start(env, "multi")
    bad, _ = env.new_task({"split": "raise"}, sub_type=16, items=0)
    good, _ = env.new_task({"parts": 1}, sub_type=16, items=0)
    drain(env, scheduler, workers, lambda: task_status(env, good) == TaskStatus.DONE)
    task = env.db.task(bad)
    assert task["status"] == TaskStatus.FAILED
    assert task["remark"] == "split failed: ValueError: cannot split 'this' task"
    assert env.db.items_of(bad) == []


def test_split_returning_no_items_fails_the_task(env):
    scheduler, workers = start(env, "multi")
    task_id, _ = env.new_task({"split": "empty"}, sub_type=16, items=0)
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.FAILED)
    assert env.db.task(task_id)["remark"] == "split failed: split_task returned no items"
    assert env.db.items_of(task_id) == []


def test_a_split_interrupted_halfway_is_redone_once_with_nothing_doubled(env, tmp_path):
    """defects.md #13: a crash mid-split left 4 items for a 2-item task; here it is all or nothing."""
    from dlsupervisor import remarks

    scheduler, (worker,) = start(env, "multi")
    log = tmp_path / "markers"
    task_id, _ = env.new_task({"parts": 2, "log": str(log)}, sub_type=16, items=0)
    # A splitter on another host claims the split, then its host dies before committing.
    dead = remarks.split_token("gone-host", 4242)
    assert env.store.claim_split(task_id, dead, env.settings.scheduler.lease)
    for _ in range(3):
        scheduler.tick()
        worker.run_once(timeout=0.05)
    assert env.db.items_of(task_id) == [], "a live split claim must not be taken over"
    assert task_status(env, task_id) == TaskStatus.READY
    env.db.age("download_task_main", task_id, env.settings.scheduler.lease + 1)
    drain(env, scheduler, [worker], lambda: task_status(env, task_id) == TaskStatus.DONE)
    assert len(env.db.items_of(task_id)) == 2
    assert env.store.commit_split(task_id, dead, []) is None


def test_items_expire_and_a_task_expires_when_no_file_is_left(env):
    scheduler, workers = start(env, "multi")
    task_id, _ = env.new_task({"parts": 2}, sub_type=16, items=0)
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.DONE)
    first, second = (i["id"] for i in env.db.items_of(task_id))
    past = dt.datetime.now() - dt.timedelta(days=1)
    env.db.execute("UPDATE download_item SET expire_time = %s WHERE id = %s", (past, first))
    scheduler.tick()
    assert env.db.item(first)["status"] == ItemStatus.EXPIRED
    assert task_status(env, task_id) == TaskStatus.DONE, "one file is still ready"
    env.db.execute("UPDATE download_item SET expire_time = %s WHERE id = %s", (past, second))
    scheduler.tick()
    assert env.db.item(second)["status"] == ItemStatus.EXPIRED
    assert task_status(env, task_id) == TaskStatus.EXPIRED


def test_a_done_item_without_expire_time_expires_after_file_ttl(env):
    """defects.md #21: NULL expire_time never expired in the original."""
    scheduler, workers = start(env)
    task_id, (item_id,) = env.new_task({"do": "ok"})
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.DONE)
    env.db.execute("UPDATE download_item SET expire_time = NULL WHERE id = %s", (item_id,))
    scheduler.tick()
    assert env.db.item(item_id)["status"] == ItemStatus.DONE
    env.db.age("download_item", item_id, env.settings.scheduler.file_ttl + 60)
    scheduler.tick()
    assert env.db.item(item_id)["status"] == ItemStatus.EXPIRED
    assert task_status(env, task_id) == TaskStatus.EXPIRED


def test_old_rows_are_not_stranded_by_time_windows(env):
    """defects.md #21: 3- and 7-day windows stranded older rows; here age does not matter."""
    scheduler, workers = start(env)
    month_ago = dt.datetime.now() - dt.timedelta(days=30)
    task_id, (item_id,) = env.new_task({"do": "ok"}, created_time=month_ago)
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.DONE)


def test_cancelled_task_cancels_its_waiting_items_and_its_worker_skips_them(env, tmp_path):
    """defects.md #11: the original overwrote CANCELLED with PROCESSING and exported anyway."""
    scheduler, (worker,) = start(env)
    log = tmp_path / "markers"
    task_id, items = env.new_task({"do": "ok", "log": str(log)}, items=2)
    scheduler.tick()  # dispatched: the wake-ups are in the queue
    env.db.execute("UPDATE download_task_main SET status = 4 WHERE id = %s", (task_id,))
    for _ in range(3):
        worker.run_once(timeout=0.05)
    scheduler.tick()
    for item_id in items:
        item = env.db.item(item_id)
        assert (item["status"], item["remark"]) == (ItemStatus.CANCELLED, "cancelled")
    assert not log.exists(), "a cancelled item was exported"
    assert task_status(env, task_id) == TaskStatus.CANCELLED


def test_work_whose_wake_up_was_lost_is_sent_again(env):
    """defects.md #4: after Redis lost its lists, dispatched items stayed READY forever."""
    scheduler, (worker,) = start(env)
    task_id, (item_id,) = env.new_task({"do": "ok"})
    scheduler.tick()
    if env.settings.redis is not None:
        lose_wake_ups(env)
        assert worker.run_once(timeout=0.05) is False
        worker.register()  # the flush took the registrations too; workers renew them
        env.db.age("download_item", item_id, env.settings.scheduler.redispatch_after + 1)
        assert scheduler.tick().resent == 1
    drain(env, scheduler, [worker], lambda: task_status(env, task_id) == TaskStatus.DONE)
    assert env.db.item(item_id)["status"] == ItemStatus.DONE


def lose_wake_ups(env):
    """What FLUSHALL does to this test's keys (without flushing anyone else's)."""
    if env.settings.redis is None:
        return
    client = env.queue.client
    keys = list(client.scan_iter(match=f"{env.prefix}*"))
    if keys:
        client.delete(*keys)


def test_a_task_no_worker_serves_is_left_alone_with_one_warning(env, caplog):
    """defects.md #9: one unserved task stopped all dispatching in the original."""
    scheduler, workers = start(env)
    orphan, _ = env.new_task({"do": "ok"}, sub_type=999)
    served, _ = env.new_task({"do": "ok"})
    with caplog.at_level(logging.WARNING, logger="dlsupervisor.scheduler"):
        drain(env, scheduler, workers, lambda: task_status(env, served) == TaskStatus.DONE)
        for _ in range(3):
            scheduler.tick()
    assert task_status(env, orphan) == TaskStatus.READY
    warnings = [r.getMessage() for r in caplog.records if "999" in r.getMessage()]
    assert warnings == ["tasks of sub_type 999 are waiting: no live worker serves it"]


def test_items_are_routed_by_their_own_type(env):
    """defects.md #10: an item whose type differs from its task's sub_type was stuck."""
    scheduler, workers = start(env, "behaviour", "multi")
    task_id, (routed, unserved) = env.new_task({"do": "ok"}, items=2)
    env.db.execute("UPDATE download_item SET type = 16 WHERE id = %s", (routed,))
    env.db.execute("UPDATE download_item SET type = 555 WHERE id = %s", (unserved,))
    drain(env, scheduler, workers, lambda: task_status(env, task_id) == TaskStatus.DONE)
    assert env.db.item(routed)["status"] == ItemStatus.DONE
    item = env.db.item(unserved)
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "invalid data: no worker serves item type 555"
    assert env.db.task(task_id)["remark"] == "1 of 2 files ready, 1 failed"


def test_stuck_tasks_do_not_starve_new_ones(env):
    """defects.md #20: LIMIT 1000 without ORDER BY let 1000 stuck tasks starve new ones."""
    env.write_config(scheduler={"batch_size": 3})
    scheduler, workers = start(env)
    for _ in range(6):
        env.new_task({"do": "ok"}, items=0)  # READY tasks whose items never came
    for _ in range(6):
        env.new_task({"do": "ok"}, sub_type=999)  # nobody serves these
    fresh, _ = env.new_task({"do": "ok"})
    drain(env, scheduler, workers, lambda: task_status(env, fresh) == TaskStatus.DONE)


def test_oldest_tasks_are_dispatched_first(env):
    env.write_config(scheduler={"batch_size": 2})
    scheduler, _ = start(env)
    tasks = [env.new_task({"do": "ok"})[0] for _ in range(5)]
    scheduler.tick()
    assert [task_status(env, t) for t in tasks] == [1, 1, 0, 0, 0]


def test_a_pass_that_stops_at_batch_size_is_followed_at_once_not_after_a_poll(env):
    """A burst of inserted rows: each full pass is followed by the next without the pause."""
    scheduler, _ = start(env)
    scheduler.conf = dataclasses.replace(scheduler.conf, batch_size=5, poll_interval=60)
    tasks = [env.new_task({"do": "ok"})[0] for _ in range(12)]
    passes, pauses = [], []
    scheduler.pause = lambda started: pauses.append(len(passes))
    real_tick = scheduler.tick
    scheduler.tick = lambda: passes.append(real_tick()) or passes[-1]
    scheduler.run(lambda: len(passes) >= 3)
    assert [(p.dispatched, p.more) for p in passes] == [(5, True), (5, True), (2, False)]
    assert pauses == [3], "the loop paused after a full pass"
    assert {task_status(env, t) for t in tasks} == {TaskStatus.PROCESSING}
