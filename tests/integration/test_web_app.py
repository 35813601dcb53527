"""contract.md §8 in-process: the WSGI app served by the real server (waitress) on an
ephemeral port -- /healthz with the database gone, the s3 redirect fetched from moto's
S3 server, the JSON API and its token."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from waitress import wasyncore

from dlsupervisor import config
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.store import ProgressReport
from dlsupervisor.web import links
from dlsupervisor.web.server import make_server
from tests.helpers.private import PrivateMariaDB
from tests.helpers.s3server import CREDENTIALS, s3_server

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

SECRET = "in-process-secret"


@contextlib.contextmanager
def serving(settings) -> Iterator[int]:
    """The app on waitress in a thread; its port.  Closed (and the thread joined) after."""
    server = make_server(settings, port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        # Closed in the loop's own thread (a trigger's callback), between two selects: closed
        # from this thread, the loop's select would see a closed descriptor (EBADF).
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
        server.task_dispatcher.shutdown()


def get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def web_settings(path, db_url: str, storage: dict | None = None, **web: str):
    lines = [f"[database]\nurl = {db_url}\n", f"[web]\nlisten = 127.0.0.1:0\nsecret = {SECRET}\n"]
    lines += [f"{k} = {v}\n" for k, v in web.items()]
    if storage:
        lines.append("[storage]\n" + "".join(f"{k} = {v}\n" for k, v in storage.items()))
    path.write_text("".join(lines))
    return config.load(str(path))


def test_healthz_is_503_while_the_database_is_down(tmp_path):
    maria = PrivateMariaDB()
    try:
        maria.start()
        settings = web_settings(tmp_path / "web.ini", maria.url)
        with serving(settings) as port:
            assert get(port, "/healthz")[0] == 200
            maria.stop()
            assert get(port, "/healthz")[0] == 503
            maria.start()
            deadline = time.monotonic() + 20
            while get(port, "/healthz")[0] != 200:
                assert time.monotonic() < deadline, "healthz never recovered"
                time.sleep(0.1)
    finally:
        maria.close()


def done_item(env, key: str, file_name: str, **cols) -> tuple[int, int]:
    task_id, (item_id,) = env.new_task({"x": 1}, sub_type=25, status=2, **cols)
    env.db.execute(
        "UPDATE download_item SET status = %s, file_name = %s WHERE id = %s",
        (ItemStatus.DONE, file_name, item_id),
    )
    env.store.record_file(item_id, key, 3600)
    return task_id, item_id


def test_an_s3_download_redirects_to_a_presigned_url_that_works(sqlite_env, tmp_path, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with s3_server() as s3:
        storage = s3.storage(tmp_path / "files")
        settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url, storage, max_downloads="1")
        _, item_id = done_item(sqlite_env, "dl/7/1/x/report.csv", "report.csv")
        s3.client().put_object(Bucket="exports", Key="dl/7/1/x/report.csv", Body=b"a,b\n1,2\n")
        expiry = int(time.time()) + 600
        path = f"/d/{item_id}?e={expiry}&s={links.signature(SECRET, item_id, expiry)}"
        with serving(settings) as port:
            code, headers, _ = get(port, path, method="HEAD")  # not a download: nothing counted
            assert code == 200 and "report.csv" in headers["content-disposition"]
            code, headers, _ = get(port, path)
            assert code == 302 and headers["location"].startswith(s3.endpoint)
            with urllib.request.urlopen(headers["location"], timeout=10) as fetched:
                assert fetched.read() == b"a,b\n1,2\n"
            assert get(port, path)[0] == 410  # the limit (1) was reached by the first
        row = sqlite_env.db.item(item_id)
        assert (row["status"], row["download_times"]) == (ItemStatus.EXPIRED, 1)


@pytest.mark.parametrize("token", ["", "s3cr3t-token"])
def test_the_api_lists_tasks_with_their_items_and_wants_the_token_when_set(sqlite_env, tmp_path, token):
    settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url, token=token)
    older, _ = done_item(sqlite_env, "7/1/1/a.csv", "a.csv", org_id=7)
    newer, _ = done_item(sqlite_env, "8/1/1/b.csv", "b.csv", org_id=8)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with serving(settings) as port:
        if token:
            assert get(port, "/api/tasks")[0] == 401
            assert get(port, "/api/tasks", {"Authorization": "Bearer wrong"})[0] == 401
            assert get(port, "/")[0] == 401
        code, _, body = get(port, "/api/tasks", auth)
        assert code == 200
        assert [t["id"] for t in json.loads(body)][:2] == [newer, older]
        code, _, body = get(port, "/api/tasks?org=7", auth)
        assert [t["id"] for t in json.loads(body)] == [older]
        code, _, body = get(port, f"/api/tasks/{newer}", auth)
        task = json.loads(body)
        assert code == 200 and task["items"][0]["file_name"] == "b.csv" and "data" not in task
        assert get(port, "/api/tasks/99999", auth)[0] == 404


def task_with_progress(env) -> tuple[int, list[int]]:
    """A task of four items, each reported by the master's own write (store.write_progress,
    which writes only while an item is PROCESSING): one running at 40 of 100, one DONE after
    70 of 100, one requeued after 5 (READY again) and one that never reported."""
    task_id, items = env.new_task({"x": 1}, sub_type=25, items=4, status=1)
    running, done, requeued, _silent = items
    env.db.execute(
        f"UPDATE download_item SET status = %s WHERE id IN ({running}, {done}, {requeued})",
        (ItemStatus.PROCESSING,),
    )
    reports = [
        ProgressReport(running, 40, 100),
        ProgressReport(done, 70, 100),
        ProgressReport(requeued, 5, 100),
    ]
    env.store.write_progress(reports)
    env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.DONE, done))
    env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.READY, requeued))
    return task_id, items


def test_the_api_shows_each_items_progress_and_their_sum_per_task(env, tmp_path):
    settings = web_settings(tmp_path / "web.ini", env.db_url)
    task_id, (running, done, requeued, silent) = task_with_progress(env)
    failed, (failed_item,) = env.new_task({"x": 2}, sub_type=25, status=1)
    env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.PROCESSING, failed_item))
    env.store.write_progress([ProgressReport(failed_item, 3, None)])
    env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.FAILED, failed_item))
    env.db.execute("UPDATE download_task_main SET status = %s WHERE id = %s", (TaskStatus.FAILED, failed))
    with serving(settings) as port:
        code, _, body = get(port, f"/api/tasks/{task_id}")
        assert code == 200
        task = json.loads(body)
        by_item = {i["id"]: i["export_progress"] for i in task["items"]}
        assert by_item == {
            running: {"done": 40, "total": 100, "text": "40%"},
            done: {"done": 100, "total": 100, "text": "100%"},  # DONE: complete, whatever came last
            requeued: None,  # its row is the last attempt's
            silent: None,
        }
        assert task["export_progress"] == {"done": 140, "total": 200, "text": "70%"}
        listed = {t["id"]: t for t in json.loads(get(port, "/api/tasks")[2])}
        assert listed[task_id]["export_progress"] == task["export_progress"]
        assert listed[failed]["export_progress"] is None  # a failed task shows none
        assert listed[failed]["items"][0]["export_progress"] is None
