"""contract.md §5, row by row, for the outcomes that need no supervisor: the scheduler and a
worker driven in-process against the real backends."""

from __future__ import annotations

import datetime as dt

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)


def run_one(env, data, **task_kwargs):
    """Insert a single-item task, dispatch it, let one worker take it, roll up."""
    scheduler, worker = env.scheduler(), env.worker()
    worker.register()
    task_id, (item_id,) = env.new_task(data, **task_kwargs)
    scheduler.tick()
    assert worker.run_once(timeout=2), "no work was delivered to the worker"
    scheduler.tick()
    return env.db.task(task_id), env.db.item(item_id)


def test_export_returning_a_result_makes_the_item_done_with_expiry(env):
    task, item = run_one(env, {"do": "ok", "file_name": "report.csv"})
    assert item["status"] == ItemStatus.DONE
    assert item["url"] == "file:///exports/report.csv"
    assert item["file_name"] == "report.csv"
    assert len(item["md5_value"]) == 32
    assert item["remark"] is None
    ttl = env.settings.scheduler.file_ttl
    expires_in = (item["expire_time"] - item["last_updated_time"]).total_seconds()
    assert abs(expires_in - ttl) < 5, expires_in
    assert task["status"] == TaskStatus.DONE


def test_success_keeps_an_expire_time_set_by_the_application(env):
    """defects.md #22: the application's own expire_time is not overwritten."""
    scheduler, worker = env.scheduler(), env.worker()
    worker.register()
    task_id, (item_id,) = env.new_task({"do": "ok"})
    chosen = dt.datetime(2037, 1, 2, 3, 4, 5)
    env.db.execute("UPDATE download_item SET expire_time = %s WHERE id = %s", (chosen, item_id))
    scheduler.tick()
    worker.run_once(timeout=2)
    item = env.db.item(item_id)
    assert item["status"] == ItemStatus.DONE
    assert item["expire_time"] == chosen


@pytest.mark.parametrize(
    "data, expected",
    [
        (None, "invalid data: data is empty"),
        ("   ", "invalid data: data is empty"),
        ("{not json", "invalid data: not JSON"),
    ],
)
def test_unusable_data_fails_the_item_with_invalid_data(env, data, expected):
    """defects.md #26: empty, NULL and non-JSON data fail with a message."""
    task, item = run_one(env, data)
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith(expected), item["remark"]
    assert task["status"] == TaskStatus.FAILED
    assert task["remark"] == item["remark"]


def test_missing_org_id_fails_the_item_with_invalid_data(env):
    task, item = run_one(env, {"do": "ok"}, org_id=0)
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "invalid data: org_id is missing"


def test_validation_returning_none_fails_the_item_as_rejected(env):
    """defects.md #8: the original left such an item PROCESSING forever."""
    task, item = run_one(env, {"reject": True})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "rejected: get_validated_data_params returned None"
    assert task["status"] == TaskStatus.FAILED


def test_validation_raising_fails_the_item_as_rejected(env):
    task, item = run_one(env, {"reject_raise": "org 7 may not export"})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "rejected: ValueError: org 7 may not export"


def test_export_raising_fails_the_item_with_type_and_message(env):
    task, item = run_one(env, {"do": "raise", "message": "disk full"})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "export failed: RuntimeError: disk full"
    assert task["status"] == TaskStatus.FAILED


def test_export_returning_something_else_fails_the_item(env):
    task, item = run_one(env, {"do": "bad"})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith("export failed: bad return value"), item["remark"]


def test_seed_style_none_triple_counts_as_done(env):
    """The seed's README example returns (None, None, None); it ran to DONE there too."""
    task, item = run_one(env, {"do": "none"})
    assert item["status"] == ItemStatus.DONE
    assert item["url"] is None
    assert task["status"] == TaskStatus.DONE


HOSTILE = 'it\'s "quoted"; DROP TABLE download_item; -- 😀 导出失败 \\ %s %(x)s'


def test_hostile_text_in_data_and_exception_messages_is_stored_verbatim(env):
    """defects.md #1, #2, #24, #25: parameterised writes, utf8mb4, data untouched, remark fitted."""
    other_task, (other_item,) = env.new_task({"do": "ok"}, org_id=99, sub_type=999)
    data = {"do": "raise", "message": HOSTILE, "repeat": 20, "note": HOSTILE}
    task, item = run_one(env, data)
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith('export failed: RuntimeError: it\'s "quoted"; DROP TABLE')
    assert "😀 导出失败" in item["remark"]
    assert len(item["remark"]) <= 256
    assert item["data"] == env.db.task(task["id"])["data"], "data must never be modified"
    assert "😀" in item["data"] and "导出失败" in item["data"]
    untouched = env.db.item(other_item)
    assert untouched["status"] == ItemStatus.READY and untouched["remark"] is None


def test_emoji_file_name_is_stored_intact(env):
    """defects.md #25: `report-😀.csv` is not stored as `report-?.csv`."""
    task, item = run_one(env, {"do": "ok", "file_name": "report-😀-导出.csv"})
    assert item["file_name"] == "report-😀-导出.csv"


def test_a_result_too_long_for_its_column_fails_the_item_not_the_write(env):
    """defects.md #2: an outcome write cannot fail on content."""
    task, item = run_one(env, {"do": "ok", "file_name": "x" * 300})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "export failed: bad return value (file_name is longer than 256 characters)"


def test_the_same_item_delivered_twice_runs_once(env, tmp_path):
    """defects.md #6, #12: a claim needs status READY; a duplicate neither re-runs nor moves expiry."""
    log = tmp_path / "markers"
    scheduler, first, second = env.scheduler(), env.worker(), env.worker()
    first.register()
    task_id, (item_id,) = env.new_task({"do": "ok", "log": str(log)})
    scheduler.tick()
    assert first.run_once(timeout=2)
    done = env.db.item(item_id)
    assert second.run_item(item_id) is False, "a second delivery ran the item again"
    assert first.run_item(item_id) is False
    assert log.read_text().count("START") == 1
    after = env.db.item(item_id)
    assert after["status"] == ItemStatus.DONE
    assert after["expire_time"] == done["expire_time"]
    assert after["last_updated_time"] == done["last_updated_time"]


def test_redis_never_holds_the_same_wake_up_twice(mysql_env):
    """Re-sending READY work (after a lost wake-up, or by two schedulers) does not pile up."""
    env = mysql_env
    assert env.queue.push("behaviour", ["i:1", "i:2"]) == 2
    assert env.queue.push("behaviour", ["i:1", "i:2", "i:3"]) == 1
    assert env.queue.client.zrange(env.queue.queue_key("behaviour"), 0, -1) == ["i:1", "i:2", "i:3"]


def test_submit_wakes_an_idle_worker_without_a_scheduler_pass(env):
    """defects.md #16: the original moved one item per cron tick; here the wake-up is immediate."""
    from dlsupervisor.client import Client

    worker = env.worker()  # note: no scheduler exists in this test at all
    with Client(env.settings) as client:
        task_id = client.submit("behaviour", 7, {"do": "ok"})
    assert worker.run_once(timeout=2), "the worker was not woken by submit()"
    (item,) = env.db.items_of(task_id)
    assert item["status"] == ItemStatus.DONE
