"""Completion notices under the real daemon (contract.md §9): on_task_finished runs once in a
worker of the subtype, retried if it raises; a pending notice survives a daemon restart."""

from __future__ import annotations

import json

from dlsupervisor.model import TaskStatus
from dlsupervisor.store.records import NoticeState
from tests.helpers.wait import wait_until
from tests.helpers.webhook import Receiver
from tests.process.test_daemon import config

NOTIFYING = "tests.hooks.behaviours:Notifying"


def notice(env, task_id, kind):
    rows = env.db.execute(
        "SELECT * FROM dlsupervisor_notice WHERE task_id = %s AND kind = %s", (task_id, kind)
    )
    return rows[0] if rows else None


def test_on_task_finished_runs_once_in_a_worker_and_is_retried_if_it_raises(env, daemon, tmp_path):
    d = daemon(**config(workers=1, notifying={"handler": NOTIFYING, "workers": 1})).start()
    log = tmp_path / "markers"
    data = json.dumps({"log": str(log), "notice_fails": 1})
    task_id, _ = env.new_task(data, sub_type=18, notify=1)
    row = wait_until(
        lambda: (n := notice(env, task_id, "hook")) and n["state"] == NoticeState.DELIVERED and n,
        timeout=30,
        what="the hook notice delivered",
        context=d.context,
    )
    assert env.db.task(task_id)["status"] == TaskStatus.DONE
    runs = [line.split() for line in log.read_text().splitlines() if line.startswith("NOTICE")]
    assert len(runs) == 2 and row["attempts"] == 2  # raised once, then delivered
    assert {int(r[2]) for r in runs} == {d.child("notifying#1")["pid"]}  # not the master nor scheduler
    assert all(int(r[3]) == TaskStatus.DONE for r in runs)
    assert notice(env, task_id, "webhook")["state"] == NoticeState.NOT_APPLICABLE  # no notify_url


def test_a_notice_pending_across_a_restart_is_delivered_after_it_once(env, daemon, tmp_path):
    receiver = Receiver(fail_first=1)
    try:
        behaviour = {"handler": "tests.hooks.behaviours:Behaviour", "workers": 1, "notify_url": receiver.url}
        d = daemon(**{**config(workers=1), "subtypes": {"behaviour": behaviour}}).start()
        task_id, _ = env.new_task({"do": "ok"}, notify=1)
        wait_until(lambda: len(receiver.requests) == 1, timeout=30, what="the first (failing) POST")
        d.stop()
        pending = notice(env, task_id, "webhook")
        assert pending["state"] == NoticeState.PENDING and pending["attempts"] == 1
        d.start()
        wait_until(
            lambda: notice(env, task_id, "webhook")["state"] == NoticeState.DELIVERED,
            timeout=30,
            what="delivered after the restart",
            context=d.context,
        )
        assert [r.answered for r in receiver.requests] == [500, 200]
        assert len({r.headers["X-Dlsupervisor-Delivery"] for r in receiver.requests}) == 1
    finally:
        receiver.close()
