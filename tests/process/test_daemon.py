"""The real daemon: forks, signals, timeouts, crashes, reloads (contract.md §3, §4, §5).

Each test starts `python -m dlsupervisor start` in its own session with
time-compressed settings, waits on NOTIFY_SOCKET, the status file and table
rows, and the `daemon` fixture asserts that no process it started is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import psutil
import pytest

from dlsupervisor.client import Client
from dlsupervisor.model import ItemStatus, TaskStatus
from tests.helpers.daemon import gone, title
from tests.helpers.wait import wait_until

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"
MULTI = "tests.hooks.behaviours:MultiBehaviour"
FAST = {"stop_timeout": 2, "kill_grace": 0.5, "min_uptime": 0.5, "max_backoff": 2}


def config(workers=2, timeout=5, supervisor=None, scheduler=None, **extra_subtypes):
    subtypes = {
        "behaviour": {"handler": BEHAVIOUR, "workers": workers, "timeout": timeout},
        "multi": {"handler": MULTI, "workers": 1, "timeout": timeout},
        **extra_subtypes,
    }
    return {
        "subtypes": subtypes,
        "supervisor": {**FAST, **(supervisor or {})},
        "scheduler": {"poll_interval": 0.05, **(scheduler or {})},
    }


def submit(env, data, subtype="behaviour"):
    with Client(env.settings) as client:
        task_id = client.submit(subtype, 7, data)
    items = env.db.items_of(task_id)
    return task_id, items[0]["id"] if items else None


def busy_pid(daemon, item_id, timeout=10.0):
    """The pid of the worker exporting item_id (from the status file)."""

    def probe():
        return next((c["pid"] for c in daemon.children().values() if c["item"] == item_id), None)

    return wait_until(
        probe, timeout=timeout, what=f"a worker busy with item {item_id}", context=daemon.context
    )


def marker_lines(path, prefix):
    try:
        return [line.split() for line in path.read_text().splitlines() if line.startswith(prefix)]
    except FileNotFoundError:
        return []


# -- start, titles, status ------------------------------------------------------------------


def test_boot_reports_ready_and_names_every_process(env, daemon):
    d = daemon(**config(workers=2)).start()
    children = d.wait_child("multi#1", state="idle") and d.children()
    assert set(children) == {"scheduler", "behaviour#1", "behaviour#2", "multi#1"}
    assert title(d.proc.pid) == f"dlsupervisor: master -c {env.config_path}"
    assert title(children["scheduler"]["pid"]) == "dlsupervisor: scheduler"
    d.wait_child("behaviour#2", state="idle")
    assert title(d.child("behaviour#2")["pid"]) == "dlsupervisor: worker behaviour#2 idle"
    assert children["behaviour#1"]["role"] == "worker" and children["scheduler"]["role"] == "scheduler"


def test_a_second_start_on_the_same_pidfile_refuses_with_exit_2(env, daemon):
    daemon(**config()).start()
    second = daemon(**config())  # the same file, so the same pidfile
    result = second.cli("start", check=False)
    assert result.returncode == 2
    assert "another supervisor is running" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_an_export_runs_end_to_end_and_the_title_names_its_item(env, daemon, tmp_path):
    d = daemon(**config(workers=1)).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 2, "log": str(log)})
    pid = busy_pid(d, item_id)
    assert title(pid) == f"dlsupervisor: worker behaviour#1 item {item_id}"
    d.wait_task(task_id, status=TaskStatus.DONE)
    assert env.db.item(item_id)["status"] == ItemStatus.DONE
    wait_until(lambda: title(pid) == "dlsupervisor: worker behaviour#1 idle", what="title back to idle")


def test_status_shows_every_child_with_its_work_and_resources(env, daemon):
    d = daemon(**config(workers=1)).start()
    # Long enough to outlast two `status` runs (CLI start-ups) on a loaded machine; a 3 s
    # export had ended before the second one read the table.  The stop kills it (stop_timeout).
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 15})
    busy_pid(d, item_id)
    result = d.cli("status", "--json")
    status = json.loads(result.stdout)
    rows = {row["name"]: row for row in status["children"]}
    busy = rows["behaviour#1"]
    assert busy["role"] == "worker" and busy["subtype"] == "behaviour" and busy["slot"] == 1
    assert busy["state"] == "busy" and busy["item"] == item_id
    assert busy["elapsed"] >= 0 and busy["rss_mb"] > 1 and busy["cpu_percent"] is not None
    assert busy["restarts"] == 0 and psutil.pid_exists(busy["pid"])
    assert rows["scheduler"]["state"] == "idle"
    table = d.cli("status").stdout
    for column in ("ROLE", "SUBTYPE", "SLOT", "PID", "STATE", "ITEM", "ELAPSED", "RESTARTS", "RSS", "CPU"):
        assert column in table
    assert f"busy   {item_id}" in table or f"busy  {item_id}" in table


# -- timeouts ------------------------------------------------------------------------------


def test_timeout_kills_the_whole_tree_and_a_fresh_worker_takes_the_slot(env, daemon, tmp_path):
    d = daemon(**config(workers=1, timeout=1)).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "grandchild", "log": str(log)})
    old = busy_pid(d, item_id)
    grandchild = int(wait_until(lambda: marker_lines(log, "GRANDCHILD"), what="grandchild started")[0][1])
    item = d.wait_item(item_id, status=ItemStatus.FAILED)
    assert item["remark"].startswith("timeout:"), item["remark"]
    wait_until(lambda: gone(old) and gone(grandchild), what="worker and grandchild gone")
    new = d.wait_child("behaviour#1", state="idle")
    assert new["pid"] != old
    d.wait_task(task_id, status=TaskStatus.FAILED)


def test_timeout_escalates_to_sigkill_when_the_export_ignores_sigterm(env, daemon):
    d = daemon(**config(workers=1, timeout=1, supervisor={"kill_grace": 1})).start()
    task_id, item_id = submit(env, {"do": "ignore_term"})
    old = busy_pid(d, item_id)
    item = d.wait_item(item_id, status=ItemStatus.FAILED)
    assert item["remark"].startswith("timeout:")
    assert psutil.pid_exists(old), "killed before kill_grace"
    wait_until(lambda: gone(old), timeout=5, what="SIGKILL after kill_grace")
    wait_until(
        lambda: "(signal SIGKILL; expected)" in d.log_tail(), what="the exit logged", context=d.context
    )
    d.wait_child("behaviour#1", state="idle")


def test_a_late_result_from_a_killed_export_never_overwrites_the_outcome(env, daemon, tmp_path):
    d = daemon(**config(workers=1, timeout=1, supervisor={"kill_grace": 2})).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "swallow", "log": str(log)})
    d.wait_item(item_id, status=ItemStatus.FAILED)
    wait_until(lambda: marker_lines(log, "SWALLOWED"), what="the export returned after its abort")
    d.wait_child("behaviour#1", state="idle")
    item = env.db.item(item_id)
    assert item["status"] == ItemStatus.FAILED and item["remark"].startswith("timeout:")
    assert item["url"] is None


# -- crashes -------------------------------------------------------------------------------


def test_a_killed_worker_fails_its_item_with_the_signal_and_is_replaced(env, daemon):
    d = daemon(**config(workers=1)).start()
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 30})
    old = busy_pid(d, item_id)
    os.kill(old, signal.SIGKILL)
    item = d.wait_item(item_id, status=ItemStatus.FAILED)
    assert item["remark"] == "worker died: signal SIGKILL"
    new = d.wait_child("behaviour#1", state="idle", restarts=1)
    assert new["pid"] != old
    d.wait_task(task_id, status=TaskStatus.FAILED)


@pytest.mark.parametrize(
    "data, remark",
    [
        ({"do": "segfault"}, "worker died: signal SIGSEGV"),
        ({"do": "exit", "code": 7}, "worker died: exit code 7"),
    ],
)
def test_an_export_that_takes_its_worker_down_fails_as_worker_died(env, daemon, tmp_path, data, remark):
    d = daemon(**config(workers=1)).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {**data, "before": "grandchild", "log": str(log)})
    item = d.wait_item(item_id, status=ItemStatus.FAILED)
    assert item["remark"] == remark
    d.wait_child("behaviour#1", state="idle", restarts=1)
    grandchild = int(marker_lines(log, "GRANDCHILD")[0][1])
    wait_until(lambda: gone(grandchild), what="the dead worker's child killed too")


def test_a_crash_looping_worker_backs_off_and_other_subtypes_keep_working(env, daemon):
    crash = {"handler": "tests.hooks.behaviours:CrashOnStart", "workers": 1}
    d = daemon(**config(workers=1, crash=crash, supervisor={"min_uptime": 1, "max_backoff": 2})).start()

    def delays():
        found = re.findall(
            r"backoff: crash#1 crash-looping \(\d+ early exits\); retry in ([\d.]+)s", d.log_tail(500)
        )
        return [float(x) for x in found]

    wait_until(lambda: len(delays()) >= 5, timeout=30, what="five backoffs of crash#1", context=d.context)
    assert delays()[:5] == [0.5, 1.0, 2.0, 2.0, 2.0]  # doubling, capped at max_backoff, never given up
    assert d.child("crash#1")["restarts"] >= 5
    task_id, item_id = submit(env, {"do": "ok"})
    d.wait_task(task_id, status=TaskStatus.DONE)
    assert d.proc.poll() is None


def test_an_idle_worker_that_stops_heartbeating_is_replaced(env, daemon):
    d = daemon(**config(workers=1, supervisor={"heartbeat_timeout": 1.5})).start()
    old = d.wait_child("behaviour#1", state="idle")["pid"]
    os.kill(old, signal.SIGSTOP)  # hung: alive, but its loop no longer runs
    new = wait_until(
        lambda: d.child("behaviour#1").get("pid") not in (None, old) and d.child("behaviour#1")["pid"],
        what="a replacement worker",
        context=d.context,
    )
    assert gone(old)
    d.wait_child("behaviour#1", state="idle", pid=new)


def test_max_items_recycles_the_worker_between_items(env, daemon):
    cfg = config(workers=1)
    cfg["subtypes"]["behaviour"]["max_items"] = 2
    d = daemon(**cfg).start()
    first = d.wait_child("behaviour#1", state="idle")["pid"]
    for _ in range(2):
        task_id, _ = submit(env, {"do": "ok"})
        d.wait_task(task_id, status=TaskStatus.DONE)
    wait_until(lambda: d.child("behaviour#1").get("pid") not in (None, first), what="recycled worker")
    assert gone(first)
    assert d.child("behaviour#1")["restarts"] == 1


def test_max_memory_recycles_the_worker_after_its_item(env, daemon):
    cfg = config(workers=1)
    cfg["subtypes"]["behaviour"]["max_memory_mb"] = 80
    d = daemon(**cfg).start()
    first = d.wait_child("behaviour#1", state="idle")["pid"]
    task_id, item_id = submit(env, {"do": "alloc", "mb": 120})
    d.wait_task(task_id, status=TaskStatus.DONE)
    wait_until(lambda: d.child("behaviour#1").get("pid") not in (None, first), what="recycled worker")
    assert "max_memory_mb 80" in d.log_tail()


# -- signals -------------------------------------------------------------------------------


def test_sighup_applies_only_the_difference(env, daemon):
    d = daemon(**config(workers=1)).start()
    multi = d.wait_child("multi#1", state="idle")["pid"]
    scheduler = d.child("scheduler")["pid"]
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 1.5})
    busy = busy_pid(d, item_id)
    d.rewrite(**config(workers=3))  # behaviour: 1 -> 3 workers; multi and the scheduler unchanged
    d.signal(signal.SIGHUP)
    d.wait_notify("RELOADING=1")
    d.wait_child("behaviour#3", state="idle")
    assert d.child("multi#1")["pid"] == multi and d.child("scheduler")["pid"] == scheduler
    assert d.child("behaviour#1")["pid"] == busy, "a busy worker of an unchanged subtype was touched"
    d.wait_task(task_id, status=TaskStatus.DONE)


def test_sighup_replaces_workers_of_a_changed_subtype_after_their_item(env, daemon):
    d = daemon(**config(workers=1, timeout=5)).start()
    multi = d.wait_child("multi#1", state="idle")["pid"]
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 1})
    busy = busy_pid(d, item_id)
    changed = config(workers=1, timeout=6)
    changed["subtypes"]["multi"]["timeout"] = 5
    d.rewrite(**changed)
    d.signal(signal.SIGHUP)
    d.wait_task(task_id, status=TaskStatus.DONE)  # the busy worker finished its item
    wait_until(lambda: d.child("behaviour#1").get("pid") not in (None, busy), what="replaced worker")
    assert d.child("multi#1")["pid"] == multi


def test_sighup_scale_down_retires_idle_workers_first(env, daemon):
    d = daemon(**config(workers=2)).start()
    d.wait_child("behaviour#2", state="idle")
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 1.5})
    busy = busy_pid(d, item_id)
    d.rewrite(**config(workers=1))
    d.signal(signal.SIGHUP)
    wait_until(
        lambda: len([c for c in d.children() if c.startswith("behaviour")]) == 1, what="one worker left"
    )
    remaining = [c for c in d.children().values() if c["subtype"] == "behaviour"]
    assert remaining[0]["pid"] == busy
    d.wait_task(task_id, status=TaskStatus.DONE)


@pytest.mark.parametrize(
    "section, logged",
    [
        (
            "[subtype:broken]\nhandler = tests.hooks.behaviours:Behaviour\nworkers = -1\n",
            "[subtype:broken] workers",
        ),
        (
            "[subtype:missing]\nhandler = tests.hooks.nowhere:Gone\n",
            "[subtype:missing] handler: cannot import",
        ),
    ],
    ids=["bad value", "handler cannot be imported"],
)
def test_sighup_with_a_bad_file_logs_one_line_and_changes_nothing(env, daemon, section, logged):
    d = daemon(**config(workers=1)).start()
    before = {name: c["pid"] for name, c in d.children().items()}
    with open(d.config_path, "a") as handle:
        handle.write("\n" + section)
    d.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in d.log_tail(), what="the reload failure line")
    lines = [line for line in d.log_tail().splitlines() if "reload failed" in line]
    assert len(lines) == 1 and logged in lines[0], lines
    assert {name: c["pid"] for name, c in d.children().items()} == before
    task_id, _ = submit(env, {"do": "ok"})
    d.wait_task(task_id, status=TaskStatus.DONE)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_lets_in_flight_exports_finish(env, daemon, signum):
    d = daemon(**config(workers=1, supervisor={"stop_timeout": 5})).start()
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 1})
    busy_pid(d, item_id)
    d.signal(signum)
    d.wait_notify("STOPPING=1")
    assert d.wait_exit() == 0
    assert env.db.item(item_id)["status"] == ItemStatus.DONE
    assert d.session_pids() == []


def test_sigterm_past_stop_timeout_requeues_the_item(env, daemon, tmp_path):
    d = daemon(**config(workers=1, supervisor={"stop_timeout": 1})).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "grandchild", "log": str(log)})
    busy_pid(d, item_id)
    grandchild = int(wait_until(lambda: marker_lines(log, "GRANDCHILD"), what="grandchild")[0][1])
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    item = env.db.item(item_id)
    assert item["status"] == ItemStatus.READY
    assert item["remark"].startswith("requeued: supervisor stopped"), item["remark"]
    wait_until(lambda: gone(grandchild), what="grandchild gone")


def test_sigquit_requeues_in_flight_items_at_once(env, daemon):
    d = daemon(**config(workers=1)).start()
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 30})
    pid = busy_pid(d, item_id)
    started = time.monotonic()
    d.signal(signal.SIGQUIT)
    assert d.wait_exit() == 0
    assert time.monotonic() - started < 3
    assert gone(pid)
    item = env.db.item(item_id)
    assert item["status"] == ItemStatus.READY and item["remark"].startswith("requeued:")


def test_a_requeued_item_runs_again_on_the_next_start(env, daemon):
    d = daemon(**config(workers=1)).start()
    task_id, item_id = submit(env, {"do": "sleep", "seconds": 30})
    busy_pid(d, item_id)
    d.signal(signal.SIGQUIT)
    d.wait_exit()
    env.db.execute("UPDATE download_item SET data = %s WHERE id = %s", (json.dumps({"do": "ok"}), item_id))
    d2 = daemon(**config(workers=1, scheduler={"redispatch_after": 0.2})).start()
    item = d2.wait_item(item_id, status=ItemStatus.DONE)
    assert item["remark"] is None


def test_sigusr1_reopens_the_log_file(env, daemon, tmp_path):
    log_file = tmp_path / "dl.log"
    d = daemon(**config(workers=1, supervisor={"log_file": str(log_file)})).start()
    wait_until(lambda: log_file.exists() and "ready" in log_file.read_text(), what="log lines")
    rotated = tmp_path / "dl.log.1"
    log_file.rename(rotated)
    d.signal(signal.SIGUSR1)
    task_id, _ = submit(env, {"do": "ok"})
    d.wait_task(task_id, status=TaskStatus.DONE)
    wait_until(lambda: log_file.exists() and f"task {task_id}" in log_file.read_text(), what="new log file")
    assert "log file reopened" in log_file.read_text()


def test_after_sigusr1_each_child_reopens_the_log_at_its_next_step_into_the_new_file(env, daemon, tmp_path):
    log_file = tmp_path / "dl.log"
    d = daemon(**config(workers=1, supervisor={"log_file": str(log_file)})).start()
    for name in ("scheduler", "behaviour#1", "multi#1"):
        d.wait_child(name)
    pids = {name: child["pid"] for name, child in d.children().items()}

    def silent(marker: str = "") -> list[str]:
        """The children with no line containing `marker` in the log file."""
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        lines = [line for line in lines if marker in line]
        return [name for name, pid in pids.items() if not any(f"[{pid}]" in line for line in lines)]

    wait_until(lambda: not silent(), what="a line from each child", context=lambda: f"silent: {silent()}")
    log_file.rename(tmp_path / "dl.log.1")
    d.signal(signal.SIGUSR1)
    # An idle worker reopens after its current wait for work: at most idle_wait (5 s).
    wait_until(
        lambda: not silent("log file reopened"),
        timeout=15,
        what="each child's 'log file reopened' in the new file",
        context=lambda: f"not reopened: {silent('log file reopened')}\n{d.context()}",
    )


def test_sigttin_and_sigttou_add_and_remove_a_worker_per_subtype(env, daemon):
    d = daemon(**config(workers=1)).start()
    d.wait_child("multi#1", state="idle")
    d.signal(signal.SIGTTIN)
    d.wait_child("behaviour#2", state="idle")
    d.wait_child("multi#2", state="idle")
    d.signal(signal.SIGTTOU)  # signals of one kind coalesce: wait for each to act
    wait_until(lambda: "behaviour#2" not in d.children(), what="one worker fewer", context=d.context)
    d.signal(signal.SIGTTOU)
    wait_until(
        lambda: not any(c["subtype"] for c in d.children().values()),
        what="no workers left",
        context=d.context,
    )
    assert "scheduler" in d.children()


def test_children_exit_when_the_master_is_killed(env, daemon, tmp_path):
    d = daemon(**config(workers=2)).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "grandchild", "log": str(log)})
    busy_pid(d, item_id)
    grandchild = int(wait_until(lambda: marker_lines(log, "GRANDCHILD"), what="grandchild")[0][1])
    pids = [c["pid"] for c in d.children().values()]
    d.signal(signal.SIGKILL)
    d.wait_exit()
    wait_until(lambda: all(gone(p) for p in [*pids, grandchild]), timeout=5, what="children gone")
    assert d.session_pids() == []
    assert env.db.item(item_id)["status"] == ItemStatus.PROCESSING  # recovered after the lease


def test_cancelling_a_task_kills_its_running_export_within_two_seconds(env, daemon, tmp_path):
    d = daemon(**config(workers=1)).start()
    log = tmp_path / "markers"
    task_id, item_id = submit(env, {"do": "grandchild", "log": str(log)})
    pid = busy_pid(d, item_id)
    grandchild = int(wait_until(lambda: marker_lines(log, "GRANDCHILD"), what="grandchild")[0][1])
    started = time.monotonic()
    d.cli("cancel", str(task_id))
    wait_until(lambda: gone(pid) and gone(grandchild), timeout=2, what="export and its child killed")
    assert time.monotonic() - started < 2
    item = d.wait_item(item_id, status=ItemStatus.CANCELLED)
    assert item["remark"] == "cancelled"
    d.wait_child("behaviour#1", state="idle")


def test_many_workers_use_one_connection_each_and_lose_nothing(env, daemon, tmp_path):
    """defects.md #17: more than 5 jobs exhausted the original's pool and lost 35% of items."""
    d = daemon(**config(workers=8)).start()
    log = tmp_path / "markers"
    tasks = [env.new_task({"do": "sleep", "seconds": 0.05, "log": str(log)})[0] for _ in range(80)]
    for task_id in tasks:
        d.wait_task(task_id, status=TaskStatus.DONE, timeout=30)
    runs = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("START")]
    assert len(runs) == 80 and len(set(runs)) == 80
    if env.db.kind == "mysql":
        name = env.settings.database.name
        rows = env.db.execute(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = %s", (name,)
        )
        assert rows[0]["n"] <= 9 + 1 + 1 + 2, rows  # 8 + 1 workers, scheduler, master, this test


def test_each_event_is_logged_once(env, daemon):
    """defects.md #28: the original wrote every log line twice."""
    d = daemon(**config(workers=1)).start()
    task_id, item_id = submit(env, {"do": "ok"})
    d.wait_task(task_id, status=TaskStatus.DONE)
    wait_until(lambda: f"task {task_id}: DONE" in d.log_tail(), what="the roll-up logged")
    log = d.log_tail(10_000)
    assert log.count("master: ready") == 1
    assert log.count(f"item {item_id} (task {task_id}): done") == 1


def test_start_daemon_detaches_and_stop_drains_it(env, daemon):
    d = daemon(**config(workers=1))
    d.rewrite(**d.config)
    result = d.cli("start", "--daemon")
    pidfile = d.run_dir / "dlsupervisor.pid"
    pid = 0
    try:
        pid = wait_until(lambda: pidfile.exists() and int(pidfile.read_text() or 0), what="the pidfile")
        wait_until(
            lambda: title(pid) == f"dlsupervisor: master -c {d.config_path}", what="the master's title"
        )
        assert result.stdout == ""
        wait_until(
            lambda: "master: ready" in (d.run_dir / "dlsupervisor.log").read_text(), what="logging to run_dir"
        )
        task_id, _ = submit(env, {"do": "ok"})
        d.wait_task(task_id, status=TaskStatus.DONE)
        assert json.loads(d.cli("status", "--json").stdout)["master"]["pid"] == pid
        again = d.cli("start", "--daemon", check=False)
        assert again.returncode == 2 and "another supervisor is running" in again.stderr
        stopped = d.cli("stop")
        assert f"stopped (pid {pid})" in stopped.stdout
        assert gone(pid) and not pidfile.exists()
        assert d.cli("status", check=False).returncode == 3
    finally:  # its session, and whatever runs on its configuration (the pidfile may never have come)
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if (pid and os.getsid(proc.pid) == pid) or str(d.config_path) in (proc.info["cmdline"] or ()):
                    proc.kill()
            except (psutil.Error, ProcessLookupError):
                pass


def test_the_master_never_imports_handler_modules(env, daemon, tmp_path, monkeypatch):
    """architecture.md, invariant 3: workers (and a throwaway preflight child) import them, never the
    master."""
    imports = tmp_path / "imports"
    monkeypatch.setenv("DLSV_IMPORT_LOG", str(imports))
    marked = {"handler": "tests.hooks.import_marker:Marked", "workers": 2, "timeout": 5}
    d = daemon(subtypes={"behaviour": marked}, supervisor=FAST).start()
    d.wait_child("behaviour#2", state="idle")
    d.signal(signal.SIGHUP)  # a reload checks the handlers again, in another throwaway child
    d.wait_notify("RELOADING=1")
    wait_until(lambda: d.log_tail().count("master: reloaded") == 1, what="the reload")
    importers = {int(line) for line in imports.read_text().split()}
    workers = {c["pid"] for c in d.children().values() if c["role"] == "worker"}
    assert workers <= importers
    assert d.proc.pid not in importers
    assert len(importers - workers) == 2  # the preflight children of start and of the reload
    task_id, _ = submit(env, {"do": "ok"})
    d.wait_task(task_id, status=TaskStatus.DONE)
