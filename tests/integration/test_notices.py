"""Completion notices (contract.md §9): created with the task's closing, delivered by a worker
of the subtype at least once, with a stable delivery id and a valid signature, recorded once."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from dlsupervisor import notices
from dlsupervisor.model import TaskStatus
from dlsupervisor.store.records import NoticeState
from tests.helpers.wait import wait_until
from tests.helpers.webhook import Receiver

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver():
    made = Receiver(fail_first=2)
    yield made
    made.close()


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(notices, "BACKOFF_BASE", 0.2)
    monkeypatch.setattr(notices, "CHECK_EVERY", 0.0)


def notice_rows(env, task_id):
    return {
        r["kind"]: r
        for r in env.db.execute("SELECT * FROM dlsupervisor_notice WHERE task_id = %s", (task_id,))
    }


def configure(env, monkeypatch, url):
    monkeypatch.setenv("DLSUPERVISOR_WEB_SECRET", SECRET)
    env.write_config(
        subtypes={"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "notify_url": url}}
    )


def run_until(env, worker, scheduler, probe, what):
    def step():
        scheduler.tick()
        worker.run_once(0.05)
        return probe()

    return wait_until(step, timeout=20, what=what)


def test_a_webhook_that_fails_twice_gets_the_same_signed_notice_until_one_success(
    env, monkeypatch, receiver, fast_backoff
):
    configure(env, monkeypatch, receiver.url)
    task_id, [item_id] = env.new_task({"do": "ok"}, notify=1)
    worker, scheduler = env.worker(), env.scheduler()
    rows = run_until(
        env,
        worker,
        scheduler,
        lambda: (
            (r := notice_rows(env, task_id)).get("webhook", {}).get("state") == NoticeState.DELIVERED and r
        ),
        "the webhook notice delivered",
    )
    assert [r.answered for r in receiver.requests] == [500, 500, 200]
    assert {r.headers["X-Dlsupervisor-Delivery"] for r in receiver.requests} == {
        f"{task_id}:{TaskStatus.DONE}"
    }
    for request in receiver.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Dlsupervisor-Signature"] == expected
    sent = json.loads(receiver.requests[-1].body)
    assert (sent["task_id"], sent["org_id"], sent["status"]) == (task_id, 7, TaskStatus.DONE)
    assert [i["id"] for i in sent["items"]] == [item_id] and sent["items"][0]["md5"]
    assert rows["webhook"]["attempts"] == 3 and rows["webhook"]["delivered_time"] is not None
    assert rows["hook"]["state"] == NoticeState.NOT_APPLICABLE  # Behaviour has no on_task_finished
    for _ in range(5):  # never sent again
        scheduler.tick()
        worker.deliver_notices()
    assert len(receiver.successes()) == 1 and len(receiver.requests) == 3


def test_a_task_without_notify_gets_no_notice(env, monkeypatch, receiver, fast_backoff):
    configure(env, monkeypatch, receiver.url)
    task_id, _ = env.new_task({"do": "ok"})
    worker, scheduler = env.worker(), env.scheduler()
    run_until(env, worker, scheduler, lambda: env.db.task(task_id)["status"] == TaskStatus.DONE, "task done")
    scheduler.tick()
    worker.deliver_notices()
    assert notice_rows(env, task_id) == {} and receiver.requests == []
