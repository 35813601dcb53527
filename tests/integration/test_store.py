"""The store's conditional-update contract (architecture.md, invariant 2), on every backend.

Each transition applies only from the state it expects, and says whether it
applied; the tables are read back through an independent connection (env.db).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dlsupervisor import remarks
from dlsupervisor.model import DownloadItem, ItemStatus, TaskStatus
from dlsupervisor.store import Outcome, Tally, open_store
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

A, B = remarks.owner("host-a", 101), remarks.owner("host-b", 202)
TOKEN = remarks.claim_token("host-a", 101, 1)
OTHER = remarks.claim_token("host-b", 202, 1)
DONE = Outcome(int(ItemStatus.DONE), None, "file:///x.csv", "0" * 32, "x.csv")
LONG_AGO = dt.datetime(2001, 2, 3, 4, 5, 6)
FAR_AHEAD = dt.datetime(2037, 6, 7, 8, 9, 10)  # within MySQL's TIMESTAMP range
ROUTE = 15


def one_item(env, status: int = 0, **cols) -> int:
    _, (item_id,) = env.new_task({"do": "ok"})
    if status or cols:
        sets = ", ".join(f"{name} = %s" for name in ("status", *cols))
        env.db.execute(f"UPDATE download_item SET {sets} WHERE id = %s", (status, *cols.values(), item_id))
    return item_id


def split_items(task_id: int, count: int) -> list[DownloadItem]:
    return [
        DownloadItem(task_id=task_id, org_id=7, type=16, data=json.dumps({"part": n})) for n in range(count)
    ]


# -- claim ------------------------------------------------------------------------------


def test_claim_takes_a_ready_item_marks_its_owner_and_reads_it_back(env):
    item_id = one_item(env)
    claim = env.store.claim(item_id, A, ROUTE)
    assert (claim.token, claim.attempt) == (TOKEN, 1)
    assert (claim.item.id, claim.item.status, claim.item.remark) == (item_id, 1, TOKEN)
    assert isinstance(claim.item.created_time, dt.datetime)
    row = env.db.item(item_id)
    assert (row["status"], row["remark"]) == (ItemStatus.PROCESSING, TOKEN)


@pytest.mark.parametrize(
    "status", [ItemStatus.DONE, ItemStatus.EXPIRED, ItemStatus.FAILED, ItemStatus.CANCELLED]
)
def test_claim_never_takes_an_item_that_is_not_ready(env, status):
    item_id = one_item(env, int(status), remark="kept")
    before = env.db.item(item_id)
    assert env.store.claim(item_id, A, ROUTE) is None
    assert env.db.item(item_id) == before


def test_claim_skips_items_of_cancelled_tasks_and_items_routed_elsewhere(env):
    task_id, (cancelled,) = env.new_task({"do": "ok"}, status=4)
    assert env.store.claim(cancelled, A, ROUTE) is None
    other = one_item(env)
    assert env.store.claim(other, A, 16) is None
    assert env.db.item(cancelled)["status"] == env.db.item(other)["status"] == ItemStatus.READY


def test_a_claim_retried_by_its_owner_succeeds_and_another_owner_fails(env):
    """A retry after a lost reply is idempotent; a second worker never gets the item."""
    item_id = one_item(env)
    assert env.store.claim(item_id, A, ROUTE).token == TOKEN
    assert env.store.claim(item_id, A, ROUTE).token == TOKEN, "a retried claim must count as ours"
    assert env.store.claim(item_id, B, ROUTE) is None
    assert env.db.item(item_id)["remark"] == TOKEN


def test_a_claim_counts_on_from_the_last_requeue(env):
    item_id = one_item(env, 0, remark="requeued: owner lost (no heartbeat for 60s) (attempt 2 of 3)")
    claim = env.store.claim(item_id, A, ROUTE)
    assert (claim.attempt, claim.token) == (3, remarks.claim_token("host-a", 101, 3))


def test_claiming_a_missing_item_fails(env):
    assert env.store.claim(987654, A, ROUTE) is None


# -- record -----------------------------------------------------------------------------


def test_record_with_the_claim_token_finishes_the_item(env):
    item_id = one_item(env)
    env.store.claim(item_id, A, ROUTE)
    assert env.store.record(item_id, TOKEN, DONE, file_ttl=3600) is True
    row = env.db.item(item_id)
    assert (row["status"], row["url"], row["file_name"], row["remark"]) == (2, "file:///x.csv", "x.csv", None)
    assert isinstance(row["expire_time"], dt.datetime)


def test_a_late_result_from_a_killed_export_never_overwrites(env):
    """The first owner was requeued and a second owner took the item: the first's result is stale."""
    item_id = one_item(env)
    env.store.claim(item_id, A, ROUTE)
    assert env.store.requeue(item_id, TOKEN, 0, "requeued: test (attempt 1 of 3)", None) is True
    second = env.store.claim(item_id, B, ROUTE)
    assert (second.token, second.attempt) == (remarks.claim_token("host-b", 202, 2), 2)
    before = env.db.item(item_id)
    assert env.store.record(item_id, TOKEN, DONE, file_ttl=3600) is False
    failed = Outcome(int(ItemStatus.FAILED), "export failed: late")
    assert env.store.record(item_id, TOKEN, failed, file_ttl=3600) is False
    assert env.db.item(item_id) == before
    assert env.store.record(item_id, second.token, DONE, file_ttl=3600) is True


def test_record_on_an_item_no_longer_processing_changes_nothing(env):
    """Cancelled (or failed by a timeout) while the export ran: the outcome stays."""
    item_id = one_item(env)
    env.store.claim(item_id, A, ROUTE)
    env.db.execute("UPDATE download_item SET status = 4 WHERE id = %s", (item_id,))
    before = env.db.item(item_id)
    assert env.store.record(item_id, TOKEN, DONE, file_ttl=3600) is False
    assert env.db.item(item_id) == before


# -- requeue ----------------------------------------------------------------------------


def test_requeue_needs_the_owners_token(env):
    item_id = one_item(env)
    env.store.claim(item_id, A, ROUTE)
    assert env.store.requeue(item_id, OTHER, 0, "requeued: x", None) is False
    assert env.db.item(item_id)["status"] == ItemStatus.PROCESSING
    assert env.store.requeue(item_id, TOKEN, 0, "requeued: x", None) is True
    row = env.db.item(item_id)
    assert (row["status"], row["remark"]) == (ItemStatus.READY, "requeued: x")


def test_requeue_with_a_lease_leaves_an_item_with_a_fresh_heartbeat(env):
    item_id = one_item(env)
    env.store.claim(item_id, A, ROUTE)
    assert env.store.requeue(item_id, TOKEN, 0, "requeued: x", lease=60) is False
    env.db.age("download_item", item_id, 120)
    env.store.heartbeat([item_id], [])  # the owner's heartbeat lands first
    assert env.store.requeue(item_id, TOKEN, 0, "requeued: x", lease=60) is False
    assert env.db.item(item_id)["status"] == ItemStatus.PROCESSING
    env.db.age("download_item", item_id, 120)
    assert [i for i, _ in env.store.orphans(60, 10)] == [item_id]
    assert env.store.requeue(item_id, TOKEN, -1, "gave up: x", lease=60) is True
    assert env.db.item(item_id)["status"] == ItemStatus.FAILED


def test_requeue_only_takes_processing_items(env):
    item_id = one_item(env, int(ItemStatus.DONE), remark=None)
    assert env.store.requeue(item_id, None, 0, "requeued: x", None) is False
    assert env.db.item(item_id)["status"] == ItemStatus.DONE


# -- split ------------------------------------------------------------------------------


def test_commit_split_inserts_every_item_and_moves_the_task_once(env):
    task_id, _ = env.new_task({"parts": 3}, sub_type=16, items=0)
    token = remarks.split_token("host-a", 101)
    assert env.store.claim_split(task_id, token, lease=60) is True
    assert env.store.claim_split(task_id, remarks.split_token("host-b", 1), lease=60) is False
    assert env.store.commit_split(task_id, OTHER, split_items(task_id, 3)) is None
    assert env.db.items_of(task_id) == []

    items = split_items(task_id, 3)
    committed = env.store.commit_split(task_id, token, items)
    assert committed.kept == 0 and len(committed.ids) == 3
    assert committed.ids == [row["id"] for row in env.db.items_of(task_id)]
    assert [env.db.item(i)["data"] for i in committed.ids] == [item.data for item in items]
    task = env.db.task(task_id)
    assert (task["status"], task["remark"]) == (TaskStatus.PROCESSING, None)

    assert env.store.commit_split(task_id, token, split_items(task_id, 3)) is None
    assert len(env.db.items_of(task_id)) == 3, "a repeated commit inserted items"


def test_commit_split_of_a_task_with_items_keeps_them_inserts_none_and_moves_the_task(env):
    task_id, existing = env.new_task({"parts": 3}, sub_type=16, items=2)
    token = remarks.split_token("host-a", 101)
    assert env.store.claim_split(task_id, token, lease=60) is True
    committed = env.store.commit_split(task_id, token, split_items(task_id, 3))
    assert (committed.ids, committed.kept) == ([], 2)
    assert [row["id"] for row in env.db.items_of(task_id)] == existing
    task = env.db.task(task_id)
    assert (task["status"], task["remark"]) == (TaskStatus.PROCESSING, None)


def test_commit_split_that_fails_midway_leaves_no_item_and_the_task_held(env):
    task_id, _ = env.new_task({"parts": 3}, sub_type=16, items=0)
    token = remarks.split_token("host-a", 101)
    env.store.claim_split(task_id, token, lease=60)
    items = split_items(task_id, 3)
    items[2].org_id = None  # NOT NULL: the third insert fails
    with pytest.raises(Exception):  # noqa: B017 - the driver's own IntegrityError
        env.store.commit_split(task_id, token, items)
    assert env.db.items_of(task_id) == []
    task = env.db.task(task_id)
    assert (task["status"], task["remark"]) == (TaskStatus.READY, token)
    assert env.store.commit_split(task_id, token, split_items(task_id, 2)) is not None


def test_fail_task_with_a_stale_split_token_changes_nothing(env):
    task_id, _ = env.new_task({"parts": 3}, sub_type=16, items=0)
    token = remarks.split_token("host-a", 101)
    env.store.claim_split(task_id, token, lease=60)
    assert env.store.fail_task(task_id, "split failed: x", remarks.split_token("host-b", 1)) is False
    assert env.db.task(task_id)["status"] == TaskStatus.READY
    assert env.store.fail_task(task_id, "split failed: x", token) is True
    assert env.db.task(task_id)["status"] == TaskStatus.FAILED


# -- scheduler transitions ----------------------------------------------------------------


def test_close_tasks_only_moves_processing_tasks(env):
    tasks = {status: env.new_task({"do": "ok"}, status=status)[0] for status in (0, 1, 2, 4)}
    before = {status: env.db.task(task_id) for status, task_id in tasks.items()}
    decisions = [(task_id, -1, f"closed {task_id}") for task_id in tasks.values()]
    assert env.store.close_tasks(decisions) == 1
    closed = env.db.task(tasks[1])
    assert (closed["status"], closed["remark"]) == (-1, f"closed {tasks[1]}")
    for status in (0, 2, 4):
        assert env.db.task(tasks[status]) == before[status]


def test_close_tasks_sets_each_tasks_own_status_and_remark(env):
    first, second = (env.new_task({"do": "ok"}, status=1)[0] for _ in range(2))
    assert env.store.close_tasks([(first, 2, None), (second, -1, "all failed")]) == 2
    assert (env.db.task(first)["status"], env.db.task(first)["remark"]) == (2, None)
    assert (env.db.task(second)["status"], env.db.task(second)["remark"]) == (-1, "all failed")


def test_finished_tasks_counts_terminal_items_and_names_the_first_failure(env):
    task_id, ids = env.new_task({"do": "ok"}, status=1, items=4)
    for item_id, status, remark in zip(
        ids, (2, -1, -1, 3), (None, "export failed: first", "export failed: second", None), strict=True
    ):
        env.db.execute(
            "UPDATE download_item SET status = %s, remark = %s WHERE id = %s", (status, remark, item_id)
        )
    busy_task, _ = env.new_task({"do": "ok"}, status=1, items=2)  # READY items: not finished
    ready_task, _ = env.new_task({"do": "ok"}, status=0)  # not PROCESSING: not rolled up
    tallies = env.store.finished_tasks(100)
    assert tallies == [Tally(task_id, 4, 1, 2, 1, "export failed: first")]
    assert busy_task not in [t.task_id for t in tallies] and ready_task not in [t.task_id for t in tallies]


def test_cancel_items_cancels_only_active_items_of_cancelled_tasks(env):
    task_id, ids = env.new_task({"do": "ok"}, status=4, items=3)
    env.db.execute("UPDATE download_item SET status = 1 WHERE id = %s", (ids[1],))
    env.db.execute("UPDATE download_item SET status = 2 WHERE id = %s", (ids[2],))
    live_task, (live_item,) = env.new_task({"do": "ok"}, status=1)
    assert env.store.cancel_items() == 2
    assert [row["status"] for row in env.db.items_of(task_id)] == [4, 4, 2]
    assert env.db.items_of(task_id)[0]["remark"] == "cancelled"
    assert env.db.item(live_item)["status"] == ItemStatus.READY


def test_expire_moves_past_done_items_and_tasks_left_with_no_done_item(env):
    def done_task(*expire_times):
        task_id, ids = env.new_task({"do": "ok"}, status=2, items=len(expire_times))
        for item_id, when in zip(ids, expire_times, strict=True):
            env.db.execute(
                "UPDATE download_item SET status = 2, expire_time = %s WHERE id = %s", (when, item_id)
            )
        return task_id, ids

    partly, (gone, kept) = done_task(LONG_AGO, FAR_AHEAD)
    wholly, (only,) = done_task(LONG_AGO)
    with_failure, (expiring, failed) = done_task(LONG_AGO, FAR_AHEAD)
    env.db.execute("UPDATE download_item SET status = -1 WHERE id = %s", (failed,))
    untimed, (old_null, new_null) = done_task(None, None)
    env.db.age("download_item", old_null, 7200)

    assert env.store.expire(file_ttl=3600, limit=100) == (4, 2)

    assert env.db.item(gone)["status"] == ItemStatus.EXPIRED
    assert env.db.item(kept)["status"] == ItemStatus.DONE
    assert env.db.task(partly)["status"] == TaskStatus.DONE, "a task with a file left stays DONE"
    assert env.db.task(wholly)["status"] == TaskStatus.EXPIRED
    assert env.db.task(with_failure)["status"] == TaskStatus.EXPIRED
    assert env.db.item(old_null)["status"] == ItemStatus.EXPIRED
    assert env.db.item(new_null)["status"] == ItemStatus.DONE
    assert env.db.task(untimed)["status"] == TaskStatus.DONE
    assert env.store.expire(file_ttl=3600, limit=100) == (0, 0)


# -- the rest of the worker's and master's calls -------------------------------------------


def test_fail_items_and_mark_tasks_processing_only_move_ready_rows(env):
    task_id, (ready, done) = env.new_task({"do": "ok"}, items=2)
    env.db.execute("UPDATE download_item SET status = 2 WHERE id = %s", (done,))
    assert env.store.fail_items([ready, done], "invalid data: x") == 1
    assert env.db.item(done)["status"] == ItemStatus.DONE
    other, _ = env.new_task({"do": "ok"}, status=2)
    assert env.store.mark_tasks_processing([task_id, other]) == 1
    assert env.db.task(other)["status"] == TaskStatus.DONE


def test_loaded_rows_carry_datetimes_on_every_backend(env):
    task_id, (item_id,) = env.new_task({"do": "ok"})
    task = env.store.load_task(task_id)
    assert isinstance(task.created_time, dt.datetime) and isinstance(task.last_updated_time, dt.datetime)
    assert env.store.held_states([item_id]) == {item_id: (0, None, 0)}


def test_one_store_leads_at_a_time_and_closing_lets_another_lead(env):
    name = f"dlsv-test:{env.db_url[-24:]}"
    first, second = open_store(env.settings.database), open_store(env.settings.database)
    try:
        assert first.lead(name, 10) is True
        assert first.lead(name, 10) is True, "the holder keeps it"
        assert second.lead(name, 10) is False
        first.unlead(name)
        assert second.lead(name, 10) is True
        assert first.lead(name, 10) is False
        second.close()
        # The server frees a closed connection's lock as its thread ends, a moment after
        # the client has gone: the lock must come free, not necessarily at once.
        wait_until(lambda: first.lead(name, 10), timeout=5, what="a closed store holds no lock")
    finally:
        first.close()
        second.close()


def test_an_update_by_the_application_moves_last_updated_time(env):
    """MySQL's ON UPDATE CURRENT_TIMESTAMP(3); SQLite's schema does the same with a trigger."""
    task_id, (item_id,) = env.new_task({"do": "ok"})
    env.db.age("download_task_main", task_id, 3600)
    env.db.age("download_item", item_id, 3600)
    aged = env.db.item(item_id)["last_updated_time"]
    env.db.execute("UPDATE download_task_main SET status = 4 WHERE id = %s", (task_id,))
    env.db.execute("UPDATE download_item SET download_times = 1 WHERE id = %s", (item_id,))
    assert env.db.item(item_id)["last_updated_time"] > aged + dt.timedelta(seconds=3000)
    assert env.db.task(task_id)["last_updated_time"] > aged + dt.timedelta(seconds=3000)


def test_downloads_are_counted_and_the_limit_expires_the_item_and_its_task(env):
    """defects.md #23: download_times was never used; EXPIRED-by-download-count never happened."""
    from dlsupervisor.client import Client

    task_id, (item_id,) = env.new_task({"do": "ok"}, status=2)
    env.db.execute("UPDATE download_item SET status = 2, url = 'file:///x' WHERE id = %s", (item_id,))
    with Client(env.settings) as client:
        assert client.count_download(item_id, limit=2) is True
        assert (env.db.item(item_id)["download_times"], env.db.item(item_id)["status"]) == (1, 2)
        assert client.count_download(item_id, limit=2) is True  # the second is served, then no more
        assert (env.db.item(item_id)["download_times"], env.db.item(item_id)["status"]) == (2, 3)
        assert env.db.task(task_id)["status"] == 3
        assert client.count_download(item_id, limit=2) is False
        assert env.db.item(item_id)["download_times"] == 2
        assert client.count_download(987654) is False
    other_task, (unlimited,) = env.new_task({"do": "ok"}, status=2)
    env.db.execute("UPDATE download_item SET status = 2 WHERE id = %s", (unlimited,))
    assert env.store.count_download(unlimited, None) == (True, 2, 1)
    assert env.db.item(unlimited)["status"] == 2


def test_a_submit_that_fails_leaves_nothing_and_the_store_usable(env):
    from dlsupervisor.model import DownloadTaskMain

    def task(data):
        return DownloadTaskMain(
            org_id=1, task_name="t", platform=0, type=10, sub_type=15, status=1, data=data
        )

    with pytest.raises(Exception):  # noqa: B017 - the driver's own error: org_id is NOT NULL
        env.store.submit(task("{}"), DownloadItem(type=15, data="{}"))
    assert env.db.execute("SELECT COUNT(*) AS n FROM download_task_main")[0]["n"] == 0
    task_id, item_id = env.store.submit(task('{"ok": 1}'), DownloadItem(org_id=1, type=15, data='{"ok": 1}'))
    assert env.db.item(item_id)["task_id"] == task_id
    assert env.db.execute("SELECT COUNT(*) AS n FROM download_task_main")[0]["n"] == 1


def test_the_mysql_connection_refuses_stacked_statements_before_and_after_claim_and_submit(mysql_env):
    from dlsupervisor.model import DownloadTaskMain

    errors = mysql_env.store.errors  # the driver's error classes

    def refused() -> None:
        with pytest.raises(errors.ProgrammingError) as raised:
            mysql_env.store._query("SELECT 1 AS a; SELECT 2 AS b")
        assert raised.value.args[0] == 1064, raised.value.args

    refused()
    item_id = one_item(mysql_env)
    assert mysql_env.store.claim(item_id, A, ROUTE).token == TOKEN
    refused()
    task = DownloadTaskMain(org_id=1, task_name="t", platform=0, type=10, sub_type=15, status=1, data="{}")
    task_id, new_item = mysql_env.store.submit(task, DownloadItem(org_id=1, type=15, data="{}"))
    assert mysql_env.db.item(new_item)["task_id"] == task_id
    refused()
    with pytest.raises(errors.MySQLError) as failed:  # the drivers' classes for it differ
        mysql_env.store.submit(task, DownloadItem(type=15, data="{}"))
    assert failed.value.args[0] == 1364, failed.value.args  # the item's org_id is NOT NULL
    refused()
    assert mysql_env.db.execute("SELECT COUNT(*) AS n FROM download_task_main")[0]["n"] == 2
    assert mysql_env.store._query("SELECT 3 AS c") == [{"c": 3}]
