"""The master against real children: what it logs and signals as they end (issue 11).

These run on SQLite only: what they pin is the master's handling of its processes,
the same on every backend (test_daemon.py runs the behaviours on all three).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import psutil
import pymysql
import pytest

from dlsupervisor import proctree
from dlsupervisor.config import load as load_config
from dlsupervisor.master.ops import ProcessOps, preflight
from dlsupervisor.model import ItemStatus
from dlsupervisor.signals import SignalInbox
from dlsupervisor.spawn import Lifeline
from tests.helpers import services
from tests.helpers.daemon import Daemon, gone
from tests.helpers.wait import wait_until

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"
FAST = {"stop_timeout": 2, "kill_grace": 0.5, "min_uptime": 0.5, "max_backoff": 2}
SQLITE_ONLY = pytest.mark.parametrize("env", ["sqlite"], indirect=True)


def config(workers=2, timeout=5, supervisor=None, **subtype):
    return {
        "subtypes": {"behaviour": {"handler": BEHAVIOUR, "workers": workers, "timeout": timeout, **subtype}},
        "supervisor": {**FAST, **(supervisor or {})},
        "scheduler": {"poll_interval": 0.05},
    }


@SQLITE_ONLY
def test_a_normal_stop_logs_each_child_as_stopped(env, daemon):
    d = daemon(**config(workers=2)).start()
    d.wait_child("behaviour#2", state="idle")
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    exits = re.findall(r"exited: (\S+) pid \d+ \((.*)\)$", d.log_tail(10_000), re.MULTILINE)
    assert sorted(exits) == [
        ("behaviour#1", "stopped; expected"),
        ("behaviour#2", "stopped; expected"),
        ("scheduler", "stopped; expected"),
    ], d.log_tail()


# -- signalling only what is ours -------------------------------------------------------


def grandchild_main(write_fd: int) -> int:
    """A child that leaves `sleep` running in its process group, says its pid, and exits."""
    sleeper = subprocess.Popen(["sleep", "60"])
    os.write(write_fd, str(sleeper.pid).encode())
    return 1


def test_a_child_is_reaped_only_after_what_it_left_is_killed():
    """While on_exit runs the child is still a zombie: its pid and group cannot be reused."""
    ops = ProcessOps(SignalInbox(), Lifeline())
    read_fd, write_fd = os.pipe()
    pid = ops.fork(lambda: grandchild_main(write_fd))
    os.close(write_fd)
    sleeper = int(os.read(read_fd, 64))
    os.close(read_fd)
    seen = []

    def on_exit(ended: int, code: int) -> None:
        seen.append((ended, code, psutil.Process(ended).status()))
        ops.kill_leftovers(ended, [])

    try:
        wait_until(lambda: gone(pid), what=f"child {pid} exited")
        wait_until(lambda: ops.reap(on_exit) or seen, what="the exit reaped")
        assert seen == [(pid, 1, psutil.STATUS_ZOMBIE)]
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped
        wait_until(lambda: gone(sleeper), what=f"the grandchild {sleeper} killed with its group")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)


def test_a_snapshot_whose_pid_now_names_another_process_is_not_signalled():
    leader = subprocess.Popen(["sleep", "60"], start_new_session=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        snapshot = psutil.Process(sleeper.pid)
        earlier = psutil.Process(sleeper.pid)
        earlier._create_time = snapshot.create_time() - 10  # what an earlier holder of the pid had
        assert proctree.same_process(snapshot)
        assert not proctree.same_process(earlier)
        assert proctree.alive([earlier, snapshot]) == [snapshot]
        proctree.signal_tree(leader.pid, signal.SIGKILL, [earlier])
        assert leader.wait(10) == -signal.SIGKILL
        assert sleeper.poll() is None, "a process that only shares a pid with the snapshot was killed"
    finally:
        for proc in (leader, sleeper):
            proc.kill()
            proc.wait(10)


# -- a reload does not stop the loop ---------------------------------------------------


@SQLITE_ONLY
def test_the_master_keeps_supervising_while_a_reload_imports_a_slow_handler(
    env, daemon, tmp_path, monkeypatch
):
    """Heartbeats and timeouts go on while the reload's handler check sleeps in its import."""
    marker = tmp_path / "slow-import"
    monkeypatch.setenv("DLSV_SLOW_IMPORT", str(marker))
    subtypes = {
        "behaviour": {"handler": BEHAVIOUR, "workers": 1, "timeout": 1},
        "slow": {"handler": "tests.hooks.slow_import:SlowImport", "workers": 1, "timeout": 0},
    }
    d = daemon(subtypes=subtypes, supervisor=FAST, scheduler={"poll_interval": 0.05, "lease": 2}).start()
    d.wait_child("behaviour#1", state="idle")
    _, [running] = env.new_task({"do": "sleep", "seconds": 30}, sub_type=16)
    d.wait_item(running, status=ItemStatus.PROCESSING)
    marker.write_text("8")  # the reload's check now takes 8 s to import the handlers
    d.signal(signal.SIGHUP)
    d.wait_notify("RELOADING=1")
    beat = env.db.item(running)["last_updated_time"]
    _, [hung] = env.new_task({"do": "hang"}, sub_type=15)
    row = d.wait_item(hung, timeout=6, status=ItemStatus.FAILED)
    assert row["remark"].startswith("timeout:")
    wait_until(
        lambda: env.db.item(running)["last_updated_time"] > beat,
        timeout=3,
        what="a heartbeat",
        context=d.context,
    )
    assert "master: reloaded" not in d.log_tail(10_000), "the check was meant to be still importing"
    wait_until(
        lambda: "master: reloaded" in d.log_tail(10_000), timeout=20, what="the reload", context=d.context
    )
    assert env.db.item(running)["status"] == ItemStatus.PROCESSING


# -- a reload never moves the master to another server -----------------------------------


@SQLITE_ONLY
def test_a_reload_that_changes_the_database_is_refused_with_one_line(env, daemon, tmp_path):
    d = daemon(**config(workers=1)).start()
    before = d.wait_child("behaviour#1", state="idle")["pid"]
    text = d.config_path.read_text()
    moved = text.replace(env.db_url, f"sqlite://{tmp_path}/elsewhere.db").replace(
        "workers = 1", "workers = 2"
    )
    assert moved != text
    d.config_path.write_text(moved)
    d.signal(signal.SIGHUP)
    d.wait_notify("RELOADING=1")
    wait_until(lambda: "reload refused" in d.log_tail(), what="the refusal", context=d.context)
    assert d.log_tail(10_000).count("reload refused") == 1
    assert "[database] changed; restart to apply it" in d.log_tail()
    task_id, [item_id] = env.new_task({"do": "ok"})
    d.wait_item(item_id, status=ItemStatus.DONE)  # still on the first database
    assert sorted(d.children()) == ["behaviour#1", "scheduler"]
    assert d.child("behaviour#1")["pid"] == before


# -- a database that refuses the master's statements --------------------------------------


class AsUser:
    """The test's environment, but the daemon connects with another database URL."""

    def __init__(self, env, db_url: str) -> None:
        self._env = env
        self.db_url = db_url

    def __getattr__(self, name: str):
        return getattr(self._env, name)


@contextlib.contextmanager
def restricted_user(db_url: str) -> Iterator[tuple[str, Callable[[str], None]]]:
    """A MySQL user with every privilege on each table of this test's database, one at a
    time revocable: yields its URL and `run(sql_template)` for GRANT/REVOKE ... {user}."""
    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    user, password = f"dlsv_u_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    accounts = [f"'{user}'@'{host}'" for host in ("%", "localhost", "127.0.0.1")]
    conn = services.mysql_root()

    def run(template: str) -> None:
        with conn.cursor() as cursor:
            for account in accounts:
                cursor.execute(template.format(db=name, user=account))

    try:
        run(f"CREATE USER {{user}} IDENTIFIED BY '{password}'")
        with conn.cursor() as cursor:
            cursor.execute(f"SHOW TABLES FROM `{name}`")
            tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            run(f"GRANT ALL ON `{{db}}`.`{table}` TO {{user}}")
        yield f"mysql://{user}:{password}@{parts.hostname}:{parts.port or 3306}/{name}", run
    finally:
        with contextlib.suppress(pymysql.err.Error):
            run("DROP USER IF EXISTS {user}")
        conn.close()


def test_a_statement_the_database_refuses_is_retried_and_never_kills_an_export(mysql_env):
    """UPDATE denied (1142) on the table the master heartbeats: logged once, retried with
    backoff; the master stays up and the export finishes once the privilege is back (within
    half the lease: past it the master's fence rightly stops an export it cannot renew)."""
    env = mysql_env
    with restricted_user(env.db_url) as (url, run):
        d = Daemon(
            AsUser(env, url),
            "restricted",
            subtypes={"behaviour": {"handler": BEHAVIOUR, "workers": 1, "timeout": 0}},
            supervisor=FAST,
            # The master heartbeats every 5 s; refused, it retries after 1 s and 2 s: renewed
            # again well within the fence's 10 s even if the revoke just missed a heartbeat.
            scheduler={"poll_interval": 0.05, "lease": 20},
        )
        try:
            d.start()
            _, [item_id] = env.new_task({"do": "sleep", "seconds": 12})
            worker = wait_until(
                lambda: d.child("behaviour#1").get("item") == item_id and d.child("behaviour#1")
            )
            run("REVOKE UPDATE ON `{db}`.`download_item` FROM {user}")
            refused = "database refused a call (OperationalError 1142)"
            wait_until(
                lambda: refused in d.log_tail(), timeout=10, what="the refusal logged", context=d.context
            )
            again = "database refused a call again (OperationalError 1142: heartbeat)"
            wait_until(lambda: again in d.log_tail(10_000), timeout=10, what="retries", context=d.context)
            run("GRANT UPDATE ON `{db}`.`download_item` TO {user}")
            d.wait_item(item_id, timeout=20, status=ItemStatus.DONE)
            log = d.log_tail(10_000)
            assert log.count(refused) == 1
            assert "master crashed" not in log and "recovered: database calls succeed again" in log
            after = d.child("behaviour#1")
            assert (after["pid"], after["restarts"]) == (worker["pid"], 0), "the export's worker was killed"
        finally:
            assert d.close() == []


def test_a_statement_refused_to_the_scheduler_and_worker_never_takes_either_down(mysql_env):
    """UPDATE denied (1142) on download_item, which the scheduler's passes and the worker's
    claim write: each logs it once per kind and retries with backoff, neither process is
    restarted, and the work goes on once the privilege is back (issue 11)."""
    env = mysql_env
    with restricted_user(env.db_url) as (url, run):
        d = Daemon(
            AsUser(env, url),
            "restricted",
            subtypes={"behaviour": {"handler": BEHAVIOUR, "workers": 1, "timeout": 0}},
            supervisor=FAST,
            scheduler={"poll_interval": 0.05, "lease": 12},
        )
        try:
            d.start()
            scheduler, worker = d.child("scheduler"), d.child("behaviour#1")
            run("REVOKE UPDATE ON `{db}`.`download_item` FROM {user}")
            _, [item_id] = env.new_task({"do": "ok"})
            refused = "database refused the scheduler's pass (OperationalError 1142)"
            wait_until(
                lambda: refused in d.log_tail(), timeout=10, what="the refusal logged", context=d.context
            )
            again = "database refused the scheduler's pass again (OperationalError 1142)"
            wait_until(lambda: again in d.log_tail(10_000), timeout=10, what="retries", context=d.context)
            run("GRANT UPDATE ON `{db}`.`download_item` TO {user}")
            d.wait_item(item_id, timeout=20, status=ItemStatus.DONE)
            recovered = "recovered: the scheduler's pass succeeds again"
            wait_until(lambda: recovered in d.log_tail(10_000), timeout=10, what=recovered, context=d.context)
            log = d.log_tail(10_000)
            assert log.count(refused) == 1 and "crashed" not in log, log
            for name, before in (("scheduler", scheduler), ("behaviour#1", worker)):
                after = d.child(name)
                assert (after["pid"], after["restarts"]) == (before["pid"], 0), f"{name} restarted"
        finally:
            assert d.close() == []


def test_a_handler_check_that_ends_without_answering_is_a_problem(tmp_path):
    path = tmp_path / "exits.ini"
    path.write_text(
        f"[database]\nurl = sqlite://{tmp_path}/dl.db\n\n"
        "[subtype:quiet]\nhandler = tests.hooks.exits_on_import:Nothing\n"
    )
    settings = load_config(str(path))
    assert (
        preflight(settings, timeout=20) == f"{path}: the handler check ended without an answer (see the log)"
    )
    good = tmp_path / "good.ini"
    good.write_text(
        f"[database]\nurl = sqlite://{tmp_path}/dl.db\n\n[subtype:behaviour]\nhandler = {BEHAVIOUR}\n"
    )
    assert preflight(load_config(str(good)), timeout=20) is None
