"""What only the SQLite store has to get right: the file, fork, the file lock, the planner."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3

import pytest

from dlsupervisor.config import parse_database_url
from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.store import open_store
from dlsupervisor.store.sqlite import SQLiteStore, to_datetime, to_text

# -- the file ----------------------------------------------------------------------------


def test_initdb_creates_the_directory_and_is_idempotent(tmp_path):
    path = tmp_path / "var" / "lib" / "dl.db"
    store = SQLiteStore(parse_database_url(f"sqlite://{path}"))
    try:
        store.initdb()
        store.initdb()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"download_task_main", "download_item", "dlsupervisor_subtype"} <= tables
    finally:
        store.close()


def test_only_initdb_creates_the_database_file(tmp_path):
    path = tmp_path / "missing" / "dl.db"
    store = SQLiteStore(parse_database_url(f"sqlite://{path}"))
    try:
        with pytest.raises(StoreUnavailable, match="unable to open"):
            store.ping()
        assert not path.exists()
    finally:
        store.close()


def test_a_write_lock_held_past_the_busy_timeout_is_an_outage_not_a_crash(sqlite_env):
    """Callers retry StoreUnavailable (retry.py); a raw sqlite3 error would kill the worker."""
    env = sqlite_env
    _, (item_id,) = env.new_task({"do": "ok"})
    _, (done_id,) = env.new_task({"do": "ok"}, status=2)  # a file past its expiry: expire must write
    env.db.execute(
        "UPDATE download_item SET status = 2, expire_time = %s WHERE id = %s",
        (dt.datetime(2000, 1, 1), done_id),
    )
    store = open_store(env.settings.database, timeout=0.2)
    try:
        env.db.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable, match="database is locked"):
                store.claim(item_id, "x:1", 15)
            with pytest.raises(StoreUnavailable, match="database is locked"):
                store.expire(3600, 10)
        finally:
            env.db.execute("ROLLBACK")
        assert store.claim(item_id, "x:1", 15).token == "running on x:1 attempt 1"
    finally:
        store.close()


def test_timestamps_are_utc_text_with_milliseconds():
    assert to_text(dt.datetime(2030, 1, 2, 3, 4, 5, 678901)) == "2030-01-02 03:04:05.678"
    aware = dt.datetime(2030, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert to_text(aware) == "2030-01-02 03:04:05.000"
    assert to_datetime("2030-01-02 03:04:05.678") == dt.datetime(2030, 1, 2, 3, 4, 5, 678000)
    assert to_datetime("2030-01-02 03:04:05") == dt.datetime(2030, 1, 2, 3, 4, 5)
    assert to_datetime("not a time") == "not a time"


# -- fork ---------------------------------------------------------------------------------


def _in_child(body) -> int:
    """Run body() in a forked child; its exit status (0: passed)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 3
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_child_never_uses_its_parents_connection_or_lock(sqlite_env):
    env = sqlite_env
    store = open_store(env.settings.database)
    try:
        store.ping()
        assert store.lead("dlsv", 10) is True
        parent_conn = store._conn

        def child() -> bool:
            store.ping()  # a connection of its own
            return store._conn is not parent_conn and store.lead("dlsv", 10) is False

        assert _in_child(child) == 0
        assert store.lead("dlsv", 10) is True, "the parent lost its lock when the child exited"
        assert env.store.lead("dlsv", 10) is False
    finally:
        store.close()
    assert env.store.lead("dlsv", 10) is True


# -- the planner (architecture.md, invariant 7) ---------------------------------------------------------

HISTORY = 30_000  # finished tasks, each with one finished item


def _active_work(env, each: int = 3) -> None:
    """A few rows for each step of a pass: dispatch, roll-up, expiry, cancel, orphan recovery."""
    for _ in range(each):
        env.new_task({"do": "ok"})
        _, (done,) = env.new_task({"do": "ok"}, status=1)
        env.db.execute("UPDATE download_item SET status = 2 WHERE id = %s", (done,))
        _, (expiring,) = env.new_task({"do": "ok"}, status=2)
        env.db.execute(
            "UPDATE download_item SET status = 2, expire_time = '2001-01-01 00:00:00.000' WHERE id = %s",
            (expiring,),
        )
        env.new_task({"do": "ok"}, status=4)
        _, (orphan,) = env.new_task({"do": "ok"}, status=1)
        env.db.execute(
            "UPDATE download_item SET status = 1, remark = 'running on x:1 attempt 1' WHERE id = %s",
            (orphan,),
        )
        env.db.age("download_item", orphan, 3600)


def _add_history(env) -> None:
    """Finished tasks and items, as years of use leave them (and no ANALYZE ever run)."""
    env.db.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %s) "
        "INSERT INTO download_task_main (org_id, platform, type, sub_type, status) "
        "SELECT 7, 1, 10, 15, CASE x % 4 WHEN 0 THEN 2 WHEN 1 THEN -1 WHEN 2 THEN 3 ELSE 4 END FROM n",
        (HISTORY,),
    )
    env.db.execute(
        "INSERT INTO download_item (task_id, org_id, type, status, expire_time) "
        "SELECT id, 7, 15, status, '2037-01-01 00:00:00.000' FROM download_task_main "
        "WHERE status IN (2, -1, 3, 4) AND id NOT IN (SELECT task_id FROM download_item)"
    )


def _vm_steps(store, call) -> int:
    """SQLite virtual-machine instructions (in tens) that `call` ran on this store."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn = store._connection()
    conn.set_progress_handler(tick, 10)
    try:
        call()
    finally:
        conn.set_progress_handler(None, 0)
    return count


def test_a_scheduler_pass_costs_the_same_over_a_long_history(sqlite_env):
    env = sqlite_env
    scheduler = env.scheduler()
    env.worker().register()
    _active_work(env)
    fresh = _vm_steps(scheduler.store, scheduler.tick)
    _add_history(env)
    _active_work(env)
    assert env.db.execute("SELECT COUNT(*) AS n FROM download_item")[0]["n"] > HISTORY
    aged = _vm_steps(scheduler.store, scheduler.tick)
    assert fresh > 0
    assert aged < 2 * fresh + 200, f"a pass over {HISTORY} finished rows ran {aged} vs {fresh} (x10 steps)"
