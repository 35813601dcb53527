"""Outages (contract.md §5, architecture.md, invariant 1, defects.md #3 and #4): MariaDB restarted, Redis
restarted or flushed.  Every process reconnects with backoff, logs once per outage, and no
item is lost or run twice.  The servers here are private ones, so restarting them
disturbs no other test."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from dlsupervisor.client import Client
from dlsupervisor.model import TaskStatus
from tests.helpers.daemon import Daemon
from tests.helpers.db import Db
from tests.helpers.env import Env
from tests.helpers.private import PrivateMariaDB, PrivateRedis
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"


@pytest.fixture
def private(tmp_path, driver):
    maria, red = PrivateMariaDB(), PrivateRedis()
    maria.start()
    red.start()
    env = Env("private", maria.url, red.url, "dl:", tmp_path, driver=driver)
    started: list[Daemon] = []
    try:
        yield env, maria, red, started
    finally:
        left = [pid for d in started for pid in d.close()]
        env.close()
        maria.close()
        red.close()
        assert not left, f"processes left behind: {left}"


def start_daemon(env, started, **scheduler):
    daemon = Daemon(
        env,
        subtypes={"behaviour": {"handler": BEHAVIOUR, "workers": 2, "timeout": 60}},
        supervisor={"stop_timeout": 2, "kill_grace": 0.5},
        scheduler={"poll_interval": 0.05, "redispatch_after": 1, **scheduler},
    )
    started.append(daemon)
    return daemon.start()


def create(env, count, markers, seconds=0.05):
    """Half through submit(), half by SQL as an application would."""
    data = {"do": "sleep", "seconds": seconds, "log": str(markers)}
    with Client(env.settings) as client:
        tasks = [client.submit("behaviour", 7, data) for _ in range(count // 2)]
    tasks += [env.new_task(data)[0] for _ in range(count - count // 2)]
    return tasks


def done_count(db, tasks):
    rows = db.execute("SELECT COUNT(*) AS n FROM download_task_main WHERE status = 2")
    return rows[0]["n"]


def starts(markers):
    return Counter(line.split()[1] for line in markers.read_text().splitlines() if line.startswith("START"))


def outage_lines(daemon, backend=""):
    """'outage:' log lines per process (role[pid]); `backend`: of this one only ("database")."""
    found = Counter()
    for line in daemon.log_tail(100_000).splitlines():
        match = re.search(r" (\S+\[\d+\]) WARNING outage: " + backend, line)
        if match:
            found[match.group(1)] += 1
    return found


def backend_lines(daemon):
    """The outage, recovery and refusal lines: what a failed count shows."""
    words = ("outage:", "recovered:", "refused")
    return [line for line in daemon.log_tail(100_000).splitlines() if any(w in line for w in words)]


def test_a_database_restart_loses_nothing_and_each_process_logs_it_once(private, tmp_path):
    env, maria, red, started = private
    d = start_daemon(env, started)
    markers = tmp_path / "markers"
    tasks = create(env, 40, markers)
    wait_until(lambda: done_count(env.db, tasks) >= 5, what="first tasks done", context=d.context)
    maria.stop()
    wait_until(
        lambda: len(outage_lines(d)) >= 3,
        timeout=15,
        what="master, scheduler and workers see it",
        context=d.context,
    )
    maria.start()
    db = Db(env.db_url)
    wait_until(lambda: done_count(db, tasks) == 40, timeout=60, what="every task DONE", context=d.context)
    runs = starts(markers)
    assert len(runs) == 40 and set(runs.values()) == {1}, runs
    per_process = outage_lines(d, "database")
    assert per_process and max(per_process.values()) == 1, (per_process, backend_lines(d))
    wait_until(
        lambda: d.log_tail(100_000).count("WARNING recovered: after") >= len(per_process),
        what="each process saying it recovered",
        context=d.context,
    )
    db.close()


def test_redis_restart_and_flushall_lose_nothing(private, tmp_path):
    env, maria, red, started = private
    d = start_daemon(env, started)
    markers = tmp_path / "markers"
    tasks = create(env, 60, markers, seconds=0.1)
    wait_until(lambda: done_count(env.db, tasks) >= 5, what="first tasks done", context=d.context)
    red.stop()  # a restart of a Redis without persistence: everything in it is gone
    wait_until(lambda: len(outage_lines(d)) >= 2, timeout=15, what="the outage noticed", context=d.context)
    red.start()
    wait_until(lambda: done_count(env.db, tasks) >= 25, timeout=60, what="work resumed", context=d.context)
    red.flushall()
    wait_until(lambda: done_count(env.db, tasks) == 60, timeout=60, what="every task DONE", context=d.context)
    runs = starts(markers)
    assert len(runs) == 60 and set(runs.values()) == {1}, runs
    assert max(outage_lines(d).values()) == 1


def test_a_supervisor_started_while_the_database_is_down_waits_for_it(private, tmp_path):
    env, maria, red, started = private
    maria.stop()
    d = start_daemon(env, started)
    wait_until(lambda: outage_lines(d), timeout=15, what="the outage noticed", context=d.context)
    assert d.proc.poll() is None, "the supervisor gave up on a database that is down"
    maria.start()
    env.db = Db(env.db_url)
    markers = tmp_path / "markers"
    task_id, _ = env.new_task({"do": "ok", "log": str(markers)})
    d.wait_task(task_id, status=TaskStatus.DONE, timeout=30)
    env.db.close()
