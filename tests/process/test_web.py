"""contract.md §8 against the real daemon: the supervised web child, /healthz, and downloads
through signed links over real HTTP (status codes, counting, the limit under concurrency,
Range, Unicode names, path traversal)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.web import links
from tests.helpers.daemon import Daemon, gone, title
from tests.helpers.wait import wait_until
from tests.process.test_daemon import FAST

HANDLER = "tests.hooks.toolkit_hooks:ToolkitExport"
SECRET = "test-web-secret"
NAME = "导出报表 2026.csv"
BODY = "".join(f"line {n}\n" for n in range(80))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class Web:
    def __init__(self, env, daemon: Daemon, port: int, files) -> None:
        self.env, self.daemon, self.port, self.files = env, daemon, port, files

    def get(self, path: str, **headers: str) -> tuple[int, dict, bytes]:
        return request(self.port, path, headers)

    def healthy(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def export(self, name: str = NAME, body: str = BODY) -> tuple[int, int, str]:
        """A finished item: (task id, item id, its url path)."""
        task_id, (item_id,) = self.env.new_task({"do": "file", "name": name, "body": body}, sub_type=25)
        row = self.daemon.wait_item(item_id, timeout=20, status=ItemStatus.DONE)
        parts = urllib.parse.urlsplit(row["url"])
        assert f"{parts.scheme}://{parts.netloc}" == f"http://127.0.0.1:{self.port}"
        return task_id, item_id, f"{parts.path}?{parts.query}"


@pytest.fixture
def web(env, tmp_path):
    made = []

    def make(max_downloads: int = 0, name: str | None = None, **web_keys) -> Web:
        """A daemon with a web child; `name`: another supervisor on the same database."""
        port = free_port()
        files = tmp_path / "files"
        keys = {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}", "secret": SECRET}
        d = Daemon(
            env,
            name,
            subtypes={"toolkit": {"handler": HANDLER, "workers": 2, "max_downloads": max_downloads}},
            supervisor={**FAST},
            storage={"path": files},
            web={**keys, **web_keys},
        )
        made.append(d)
        d.start()
        served = Web(env, d, port, files)
        wait_until(served.healthy, timeout=15, what="the web child answering", context=d.context)
        return served

    yield make
    for d in made:
        assert not d.close()


def test_the_web_child_is_supervised_restarted_and_healthy(web):
    w = web()
    child = w.daemon.wait_child("web", state="idle")
    assert title(child["pid"]).startswith("dlsupervisor: web")
    os.kill(child["pid"], signal.SIGKILL)
    wait_until(lambda: gone(child["pid"]), what="the web child gone")
    again = w.daemon.wait_child("web", timeout=15, state="idle", restarts=1)
    assert again["pid"] != child["pid"]
    wait_until(w.healthy, timeout=15, what="the restarted web child answering")


def test_the_web_child_never_imports_a_handler_module(env, tmp_path, monkeypatch):
    """The web child serves files and reads tables only: the handler modules a worker
    imports (each import leaves its pid in DLSV_IMPORT_LOG) are never imported in it."""
    imports = tmp_path / "imports"
    monkeypatch.setenv("DLSV_IMPORT_LOG", str(imports))
    port = free_port()
    d = Daemon(
        env,
        subtypes={"behaviour": {"handler": "tests.hooks.import_marker:Marked", "workers": 1}},
        supervisor={**FAST},
        web={"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}", "secret": SECRET},
    )
    try:
        d.start()
        web_pid = d.wait_child("web", state="idle")["pid"]
        worker_pid = d.wait_child("behaviour#1", state="idle")["pid"]
        served = Web(env, d, port, tmp_path)
        wait_until(served.healthy, timeout=15, what="the web child answering", context=d.context)
        importers = {int(line) for line in imports.read_text().split()}
        assert worker_pid in importers and web_pid not in importers, (importers, web_pid)
    finally:
        assert not d.close()


def thread_cpus(pid: int) -> dict[int, set[int]]:
    """Each thread's CPU affinity (a thread's id is a pid to sched_getaffinity)."""
    return {int(tid): os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: nothing to keep the threads on")
def test_the_web_childs_threads_share_one_cpu_unless_one_cpu_is_off(web):
    pinned = web().daemon.wait_child("web", state="idle")["pid"]
    cpus = thread_cpus(pinned)
    assert len(cpus) > 30 and all(len(c) == 1 for c in cpus.values()), cpus  # waitress's 32 and more
    assert len(set(map(frozenset, cpus.values()))) == 1, cpus
    free = web(name="spread", one_cpu="false").daemon.wait_child("web", state="idle")["pid"]
    assert set(map(frozenset, thread_cpus(free).values())) == {frozenset(os.sched_getaffinity(0))}


def test_a_signed_link_serves_the_file_with_its_unicode_name_and_ranges(web):
    w = web(max_downloads=3)
    _, item_id, path = w.export()
    code, headers, body = w.get(path)
    assert code == 200 and body.decode() == BODY
    assert headers["content-disposition"] == (
        "attachment; filename=\"____ 2026.csv\"; filename*=UTF-8''" + urllib.parse.quote(NAME, safe="")
    )
    code, headers, body = w.get(path, Range="bytes=10-29")
    assert code == 206 and body == BODY.encode()[10:30]
    assert headers["content-range"] == f"bytes 10-29/{len(BODY)}"
    assert w.env.db.item(item_id)["download_times"] == 2
    code, _, body = w.get(path, Range="bytes=-5")  # the third: served, and the item expires
    assert code == 206 and body == BODY.encode()[-5:]
    row = w.env.db.item(item_id)
    assert (row["status"], row["download_times"]) == (ItemStatus.EXPIRED, 3)
    assert w.get(path)[0] == 410
    assert w.env.db.item(item_id)["download_times"] == 3


def test_a_head_gets_the_headers_of_the_file_and_is_not_counted(web):
    """A link checker's (or a download manager's) HEAD is no download: one served GET later,
    the item's only download still reaches its limit of 1."""
    w = web(max_downloads=1)
    _, item_id, path = w.export()
    for _ in range(2):
        code, headers, body = request(w.port, path, method="HEAD")
        assert (code, body, headers["content-length"]) == (200, b"", str(len(BODY))), headers
        assert headers["content-disposition"].startswith("attachment;")
    row = w.env.db.item(item_id)
    assert (row["status"], row["download_times"] or 0) == (ItemStatus.DONE, 0)
    code, _, body = w.get(path)
    assert code == 200 and body.decode() == BODY
    row = w.env.db.item(item_id)
    assert (row["status"], row["download_times"]) == (ItemStatus.EXPIRED, 1)
    # at once, within the 5 s the web child keeps a DONE item's read: the HEAD reads it again
    assert request(w.port, path, method="HEAD")[0] == 410


def test_bad_links_get_403_404_410_and_no_path_reaches_the_file_system(web):
    w = web()
    _, item_id, path = w.export(body="secret bytes")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    expiry, sig = query["e"][0], query["s"][0]
    assert w.get(f"/d/{item_id}")[0] == 403
    assert w.get(f"/d/{item_id}?e={expiry}&s={'0' * 64}")[0] == 403
    assert w.get(f"/d/{item_id}?e={int(expiry) + 1}&s={sig}")[0] == 403  # expiry is signed
    assert w.get(f"/d/{item_id + 1}?e={expiry}&s={sig}")[0] == 403  # so is the item
    unknown = 987654321
    assert w.get(f"/d/{unknown}?e={expiry}&s={links.signature(SECRET, unknown, int(expiry))}")[0] == 404
    past = int(time.time()) - 10
    assert w.get(f"/d/{item_id}?e={past}&s={links.signature(SECRET, item_id, past)}")[0] == 410
    (w.files / "outside.txt").write_text("not yours")
    for hostile in ("/d/../outside.txt", "/d/%2e%2e/outside.txt", f"/d/{item_id}/../../outside.txt"):
        code, _, body = w.get(f"{hostile}?e={expiry}&s={sig}")
        assert code in (403, 404) and b"not yours" not in body, hostile
    assert not w.env.db.item(item_id)["download_times"]
    w.env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.FAILED, item_id))
    assert w.get(path)[0] == 410


def test_concurrent_downloads_never_pass_the_limit(web):
    w = web(max_downloads=5)
    _, item_id, path = w.export()
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: w.get(path)[0], range(20)))
    assert sorted(codes) == [200] * 5 + [410] * 15
    row = w.env.db.item(item_id)
    assert (row["status"], row["download_times"]) == (ItemStatus.EXPIRED, 5)


def test_concurrent_downloads_through_two_supervisors_never_pass_the_limit(web):
    """Two supervisors on one database, each with its own web child: 20 requests of one link
    released together, alternating between the two, limit 5 (contract.md §8)."""
    a = web(max_downloads=5)
    _, item_id, path = a.export()
    b = web(max_downloads=5, name="b")
    assert a.daemon.child("web")["pid"] != b.daemon.child("web")["pid"]
    together = threading.Barrier(20)

    def download(n: int) -> tuple[int, int]:
        w = (a, b)[n % 2]
        together.wait(timeout=30)
        return w.port, w.get(path)[0]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(download, range(20)))
    assert sorted(code for _, code in answers) == [200] * 5 + [410] * 15, answers
    assert {port for port, _ in answers} == {a.port, b.port}
    row = a.env.db.item(item_id)
    assert (row["status"], row["download_times"]) == (ItemStatus.EXPIRED, 5)


def scrape(w: Web) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    code, _, body = w.get("/metrics")
    assert code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_count_real_work_and_survive_a_killed_web_child(web):
    w = web(max_downloads=1)
    _, item_id, path = w.export()
    assert w.get(path)[0] == 200  # the only download: the item expires
    _, (failed,) = w.env.new_task({"do": "rows", "rows": [["a"], ["b"]], "raise_at": 1}, sub_type=25)
    w.daemon.wait_item(failed, timeout=20, status=ItemStatus.FAILED)
    done = ("dlsupervisor_items_total", (("outcome", "done"), ("subtype", "toolkit")))
    failures = ("dlsupervisor_items_total", (("outcome", "failed"), ("subtype", "toolkit")))
    # A worker adds what it counted once idle (or once a second while busy): poll for it.
    before = wait_until(
        lambda: (found := scrape(w)).get(done, 0) >= 1 and found.get(failures, 0) >= 1 and found,
        timeout=15,
        interval=0.2,
        what="the done and failed items counted",
    )
    assert before[("dlsupervisor_items_total", (("outcome", "expired"), ("subtype", "toolkit")))] >= 1
    assert before[("dlsupervisor_item_duration_seconds_count", (("subtype", "toolkit"),))] >= 2
    assert sum(v for (name, labels), v in before.items() if name == "dlsupervisor_workers") == 2
    assert all("org" not in dict(labels) and "item" not in dict(labels) for _, labels in before)
    child = w.daemon.wait_child("web", state="idle")
    os.kill(child["pid"], signal.SIGKILL)
    w.daemon.wait_child("web", timeout=15, state="idle", restarts=1)
    wait_until(w.healthy, timeout=15, what="the restarted web child answering")
    after = scrape(w)
    for key, value in before.items():
        if key[0].endswith(("_total", "_count", "_sum", "_bucket")):
            assert after[key] >= value, key
    restarts = ("dlsupervisor_child_restarts_total", (("role", "web"), ("subtype", "")))
    assert after[restarts] >= 1


def test_the_api_shows_a_running_exports_progress_then_complete(web):
    """open_output(total=5000) → the worker's slot → the master's write → /api, per item and
    summed per task, while the export runs (a pause after each report keeps it running)."""
    w = web()
    data = {"name": "rows.csv", "generate": 5000, "total": True, "pause": 0.6}
    task_id, (item_id,) = w.env.new_task(data, sub_type=25)

    def api_task() -> dict:
        code, _, body = w.get(f"/api/tasks/{task_id}")
        assert code == 200
        return json.loads(body)

    def midway() -> dict | None:
        task = api_task()
        shown = task["items"][0]["export_progress"]
        return task if shown and 0 < shown["done"] < 5000 else None

    task = wait_until(midway, timeout=15, what="a running item's progress in /api", context=w.daemon.context)
    shown = task["items"][0]["export_progress"]
    assert shown["total"] == 5000 and shown["text"] == f"{shown['done'] * 100 // 5000}%"
    assert task["export_progress"] == shown  # one item: the task's sum is its progress
    w.daemon.wait_item(item_id, timeout=20, status=ItemStatus.DONE)
    w.daemon.wait_task(task_id, status=TaskStatus.DONE)
    done = api_task()
    assert done["export_progress"] == {"done": 5000, "total": 5000, "text": "100%"}
    assert done["items"][0]["export_progress"]["text"] == "100%"
