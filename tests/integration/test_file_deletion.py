"""contract.md §7, `delete_expired`: the scheduler deletes a stored file once its item is EXPIRED
(by time or by downloads) or its task CANCELLED, retrying while the storage is down."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus
from tests.helpers.env import TOOLKIT_SUBTYPES
from tests.helpers.s3server import CREDENTIALS, s3_server

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

DATA = {"do": "file", "name": "a.csv", "body": "1"}


def setup(env, storage=None, items=1):
    env.write_config(subtypes=TOOLKIT_SUBTYPES, storage=storage or {"path": env.tmp / "files"})
    scheduler, worker = env.scheduler(), env.worker("toolkit")
    worker.sub = dataclasses.replace(worker.sub, max_items=1)  # one item a turn: the rest wait
    worker.register()
    task_id, item_ids = env.new_task(DATA, sub_type=25, items=items)
    scheduler.tick()
    assert worker.run_once(timeout=2)
    return scheduler, worker, task_id, item_ids


def sweep(scheduler):
    """Two passes: the first starts the background deletion, the second records its result."""
    scheduler.tick()
    scheduler.files.wait()
    return scheduler.tick()


def file_of(env, item_id) -> Path:
    return Path(env.db.item(item_id)["url"].removeprefix("file://"))


def test_a_file_is_deleted_once_its_item_expires_by_time(env):
    scheduler, _, task_id, (item_id,) = setup(env)
    path = file_of(env, item_id)
    assert path.is_file()
    scheduler.tick()
    assert not env.store.has_work(60, files=True)  # DONE, not due: the idle check stays idle
    env.db.execute(
        "UPDATE download_item SET expire_time = %s WHERE id = %s", ("2000-01-01 00:00:00", item_id)
    )
    env.db.execute("UPDATE dlsupervisor_file SET next_try = %s", ("2000-01-01 00:00:00",))
    sweep(scheduler)
    assert env.db.item(item_id)["status"] == ItemStatus.EXPIRED
    assert not path.exists() and not path.parent.exists()
    (row,) = env.db.execute("SELECT * FROM dlsupervisor_file")
    assert row["deleted_time"] is not None and row["next_try"] is None
    assert not env.store.has_work(env.settings.scheduler.file_ttl, files=True)


def test_a_file_is_deleted_once_its_item_expires_by_downloads(env):
    scheduler, _, _, (item_id,) = setup(env)
    scheduler.tick()
    path = file_of(env, item_id)
    env.store.count_download(item_id, 1)
    assert env.db.item(item_id)["status"] == ItemStatus.EXPIRED
    sweep(scheduler)
    assert not path.exists()


def test_a_file_is_deleted_once_its_task_is_cancelled(env):
    scheduler, _, task_id, (item_id,) = setup(env)
    path = file_of(env, item_id)
    assert env.store.cancel_task(task_id) == TaskStatus.CANCELLED  # the item is DONE, the task not yet
    sweep(scheduler)
    assert env.db.item(item_id)["status"] == ItemStatus.DONE
    assert not path.exists()


def test_a_task_cancelled_by_sql_has_its_finished_files_deleted(sqlite_env):
    scheduler, _, task_id, item_ids = setup(sqlite_env, items=2)
    done_id, waiting_id = sorted(item_ids, key=lambda i: sqlite_env.db.item(i)["status"] != ItemStatus.DONE)
    path = file_of(sqlite_env, done_id)
    sqlite_env.db.execute("UPDATE download_task_main SET status = 4 WHERE id = %s", (task_id,))
    sweep(scheduler)
    assert sqlite_env.db.item(waiting_id)["status"] == ItemStatus.CANCELLED
    assert not path.exists()


def test_delete_expired_false_keeps_files(sqlite_env):
    scheduler, _, _, (item_id,) = setup(
        sqlite_env, {"path": sqlite_env.tmp / "files", "delete_expired": False}
    )
    path = file_of(sqlite_env, item_id)
    sqlite_env.store.count_download(item_id, 1)
    sweep(scheduler)
    assert path.exists()


@pytest.fixture
def s3(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with s3_server() as server:
        yield server


def test_s3_deletion_on_expiry_is_retried_while_the_storage_is_down(sqlite_env, s3):
    scheduler, _, _, (item_id,) = setup(sqlite_env, s3.storage(sqlite_env.tmp / "files"))
    assert len(s3.keys()) == 1
    sqlite_env.store.count_download(item_id, 1)
    s3.stop()
    report = sweep(scheduler)
    assert report is not None and report.files_deleted == 0  # the pass went on
    (row,) = sqlite_env.db.execute("SELECT * FROM dlsupervisor_file")
    assert row["attempts"] == 1 and row["deleted_time"] is None
    assert not sqlite_env.store.has_work(60, files=True)  # backing off: not due again yet
    s3.start()
    sqlite_env.db.execute("UPDATE dlsupervisor_file SET next_try = %s", ("2000-01-01 00:00:00",))
    assert sweep(scheduler).files_deleted == 1
    assert s3.keys() == []


def test_without_the_table_files_are_stored_untracked_and_the_scheduler_runs(env, caplog):
    """An upgrade that has not rerun initdb (a seed deployment's tables only)."""
    env.db.execute("DROP TABLE dlsupervisor_file")
    scheduler, _, task_id, (item_id,) = setup(env)
    assert env.db.item(item_id)["status"] == ItemStatus.DONE
    assert file_of(env, item_id).is_file()
    env.store.count_download(item_id, 1)
    assert scheduler.tick() is not None
    assert "run dlsupervisor initdb" in caplog.text
