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

import psutil
import pytest

from dlsupervisor import proctree
from dlsupervisor.master.ops import ProcessOps
from dlsupervisor.model import ItemStatus
from dlsupervisor.signals import SignalInbox
from dlsupervisor.spawn import Lifeline
from tests.helpers.daemon import gone
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
