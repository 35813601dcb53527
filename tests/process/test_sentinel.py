"""Redis behind Sentinel (issue 16): a private master, its replica and one Sentinel; a failover
forced (SENTINEL FAILOVER) under a running daemon with exports in flight.  Every task ends
DONE with each item run once, and every process rides it out as it would a Redis restart:
at most one `outage:` line each, and a `recovered:` line for each one."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import redis

from tests.helpers import services
from tests.helpers.daemon import Daemon
from tests.helpers.env import Env
from tests.helpers.private import PrivateRedis, PrivateSentinel
from tests.helpers.wait import wait_until
from tests.process.test_outages import create, done_count, outage_lines, starts

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"
BEFORE = 48  # tasks submitted before the failover


@pytest.fixture
def sentinel_set(tmp_path):
    master = PrivateRedis()
    master.start()
    replica = PrivateRedis(args=("--replicaof", "127.0.0.1", str(master.port)))
    sentinel = PrivateSentinel(master)
    servers = [master, replica, sentinel]
    try:
        replica.start()
        sentinel.start()
        wait_until(sentinel.replicas_ready, timeout=30, what="the Sentinel sees an in-sync replica")
        yield master, replica, sentinel
    finally:
        for server in reversed(servers):
            server.close()


@pytest.fixture
def sentinel_env(sentinel_set, tmp_path):
    master, replica, sentinel = sentinel_set
    db_url = services.create_mysql_database()
    keys = {"sentinels": sentinel.address, "service_name": sentinel.name}
    env = Env("mysql", db_url, "redis:///0", "dl:", tmp_path, redis_keys=keys)
    started: list[Daemon] = []
    try:
        yield env, sentinel, replica, started, master
    finally:
        left = [pid for d in started for pid in d.close()]
        env.close()
        services.drop_mysql_database(db_url)
        assert not left, f"processes left behind: {left}"


def recovered_lines(daemon: Daemon) -> Counter:
    found: Counter = Counter()
    for line in daemon.log_tail(100_000).splitlines():
        match = re.search(r" (\S+\[\d+\]) WARNING recovered:", line)
        if match:
            found[match.group(1)] += 1
    return found


def role(server: PrivateRedis) -> str:
    """The server's role; "" while the Sentinel's CLIENT KILL at its demotion cuts us off."""
    try:
        return server.client().execute_command("ROLE")[0]
    except redis.exceptions.ConnectionError:
        return ""


def test_a_sentinel_failover_loses_nothing_and_runs_nothing_twice(sentinel_env, tmp_path):
    """Until the Sentinel demotes the old master (its next INFO, within ~10 s) clients stay
    on it; then their writes there fail READONLY, which redis-py turns into a reconnect
    through the Sentinels.  Exports run all along: before, across and after."""
    env, sentinel, replica, started, master = sentinel_env
    daemon = Daemon(
        env,
        subtypes={"behaviour": {"handler": BEHAVIOUR, "workers": 2, "timeout": 60}},
        supervisor={"stop_timeout": 2, "kill_grace": 0.5},
        scheduler={"poll_interval": 0.05, "redispatch_after": 1},
    )
    started.append(daemon)
    daemon.start()
    shown = daemon.cli("check").stdout
    assert f"master 127.0.0.1:{master.port} of mymaster (Sentinel), no TLS" in shown, shown
    markers = tmp_path / "markers"
    # 24 s of exports on 2 workers: the demotion comes up to ~10 s after the failover,
    # later on a loaded machine, and some of them must still be running then.
    tasks = create(env, BEFORE, markers, seconds=1.0)
    wait_until(lambda: done_count(env.db, tasks) >= 4, what="first tasks done", context=daemon.context)
    sentinel.client().execute_command("SENTINEL", "FAILOVER", sentinel.name)
    wait_until(lambda: sentinel.master_port() == replica.port, timeout=30, what="the replica promoted")
    wait_until(lambda: role(master) == "slave", timeout=30, what="the old master demoted")
    assert done_count(env.db, tasks) < BEFORE, "every export finished before the old master was demoted"
    tasks += create(env, 10, markers, seconds=0.05)  # and work submitted after it
    shown = daemon.cli("check").stdout
    assert f"master 127.0.0.1:{replica.port} of mymaster (Sentinel)" in shown, shown
    wait_until(
        lambda: done_count(env.db, tasks) == BEFORE + 10,
        timeout=90,
        what="every task DONE",
        context=daemon.context,
    )
    runs = starts(markers)
    assert len(runs) == BEFORE + 10 and set(runs.values()) == {1}, runs
    outages = outage_lines(daemon)
    assert not outages or max(outages.values()) == 1, outages
    wait_until(
        lambda: recovered_lines(daemon) == outages,
        timeout=15,
        what="a recovered: line from each process that logged an outage",
        context=lambda: f"outages {outages}, recovered {recovered_lines(daemon)}\n{daemon.context()}",
    )
    log = daemon.log_tail(100_000)
    assert " ERROR " not in log, "a process crashed (or logged an error) over the failover"
    # Idle workers end up blocked on the new master (a worker that has just finished looks
    # without blocking first, ZPOPMIN, so this is polled, not read once).
    wait_until(
        lambda: "cmd=bzpopmin" in replica.client().execute_command("CLIENT", "LIST"),
        timeout=10,
        what="a worker waiting on the new master",
        context=lambda: replica.client().execute_command("CLIENT", "LIST"),
    )
    print(f"outage lines per process: {dict(outages)}")
