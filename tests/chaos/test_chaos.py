"""Chaos (issue 6): three supervisors share one MariaDB and one Redis while thousands of
items run; busy workers and one master are SIGKILLed at random, a SIGHUP resizes a pool,
Redis is flushed once and restarted once.  Then every item must be terminal, every item
no kill touched exported exactly once, the killed ones FAILED or requeued exactly as contract.md
§5 says, and no process left.  The servers are private ones, so FLUSHALL and the restart
disturb nobody.

Each export appends `START item pid` to a marker file, so every run is attributed to the
process that ran it, and a process we killed is known by its pid."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus
from tests.helpers.daemon import Daemon, title
from tests.helpers.env import Env
from tests.helpers.private import PrivateMariaDB, PrivateRedis
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

SINGLE_TASKS = 3000
MULTI_TASKS = 250
PARTS = 8  # items per multi-item task: 3,000 + 2,000 = 5,000 items
ROUNDS = 10  # the load arrives in rounds while the chaos goes on
LEASE = 3
SEED = int(os.environ.get("CHAOS_SEED", "20261129"))


def supervisor_config(workers: int) -> dict:
    return {
        "subtypes": {
            "behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": workers, "timeout": 30},
            "multi": {"handler": "tests.hooks.behaviours:MultiBehaviour", "workers": 1, "timeout": 30},
        },
        "supervisor": {
            "stop_timeout": 5,
            "kill_grace": 0.5,
            "min_uptime": 0.2,
            "max_backoff": 1,
            "log_level": "INFO",
        },
        "scheduler": {"poll_interval": 0.1, "lease": LEASE, "redispatch_after": 1},
    }


class Chaos:
    def __init__(self, env: Env, daemons: list[Daemon], red: PrivateRedis, markers: Path) -> None:
        self.env, self.daemons, self.red, self.markers = env, daemons, red, markers
        self.rng = random.Random(SEED)
        self.killed_workers: set[int] = set()  # pids of workers we SIGKILLed
        self.orphaned: set[int] = set()  # pids of the killed master's whole session
        self.events: list[str] = []

    def live(self) -> list[Daemon]:
        return [d for d in self.daemons if d.proc.poll() is None]

    def kill_a_busy_worker(self) -> None:
        busy = []
        for d in self.live():
            for child in d.children().values():
                if child["pid"] and " item " in title(child["pid"]):
                    busy.append(child["pid"])
        if busy:
            pid = self.rng.choice(busy)
            self.killed_workers.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill_a_master(self) -> Daemon:
        """SIGKILL the master whose worker runs a slow item, so that item is orphaned."""
        slow = {
            self.env.new_task({"do": "sleep", "seconds": 5, "log": str(self.markers)})[1][0] for _ in range(3)
        }

        def running_slow():
            for d in self.live():
                for child in d.children().values():
                    if child["pid"] and any(title(child["pid"]).endswith(f" item {i}") for i in slow):
                        return d
            return None

        victim = wait_until(running_slow, timeout=30, interval=0.01, what="a slow item running")
        self.orphaned |= set(victim.session_pids())
        victim.signal(signal.SIGKILL)
        victim.wait_exit()
        self.events.append(
            f"SIGKILL master {victim.proc.pid} ({len(self.orphaned)} processes in its session)"
        )

    def resize(self, workers: int) -> None:
        d = self.live()[0]
        d.rewrite(**supervisor_config(workers))
        d.signal(signal.SIGHUP)
        self.events.append(f"SIGHUP {d.config_path.name}: behaviour workers -> {workers}")


def insert_round(env: Env, rng: random.Random, markers: Path, singles: int, multis: int) -> None:
    for _ in range(singles):
        env.new_task({"do": "sleep", "seconds": round(rng.uniform(0, 0.03), 3), "log": str(markers)})
    for _ in range(multis):
        data = {"parts": PARTS, "do": "sleep", "seconds": round(rng.uniform(0, 0.03), 3), "log": str(markers)}
        env.new_task(data, sub_type=16, items=0)


def counts(env: Env) -> dict[str, int]:
    rows = env.db.execute(
        "SELECT 'item' AS kind, status, COUNT(*) AS n FROM download_item GROUP BY status "
        "UNION ALL SELECT 'task', status, COUNT(*) FROM download_task_main GROUP BY status"
    )
    return {f"{r['kind']}:{r['status']}": r["n"] for r in rows}


def finished(env: Env) -> int:
    return env.db.execute("SELECT COUNT(*) AS n FROM download_item WHERE status IN (2, -1)")[0]["n"]


def quiet(env: Env) -> bool:
    c = counts(env)
    tasks = sum(v for k, v in c.items() if k.startswith("task:"))
    active = sum(c.get(k, 0) for k in ("task:0", "task:1", "item:0", "item:1"))
    return tasks == SINGLE_TASKS + MULTI_TASKS + 3 and active == 0  # + the 3 slow ones


@pytest.mark.timeout(400)
def test_chaos(tmp_path, driver):
    maria, red = PrivateMariaDB(), PrivateRedis()
    maria.start()
    red.start()
    env = Env("chaos", maria.url, red.url, "dl:", tmp_path, driver=driver)
    markers = tmp_path / "markers"
    daemons = [Daemon(env, name, **supervisor_config(2)) for name in ("a", "b", "c")]
    chaos = Chaos(env, daemons, red, markers)
    rng = random.Random(SEED + 1)
    started = time.monotonic()
    try:
        for d in daemons:
            d.start()
        per_round = (SINGLE_TASKS // ROUNDS, MULTI_TASKS // ROUNDS)
        plan = {
            2: lambda: chaos.resize(3),
            4: chaos.kill_a_master,
            5: lambda: flush(chaos),
            7: lambda: restart_redis(chaos, daemons),
            8: lambda: chaos.resize(1),
        }
        for round_no in range(ROUNDS):
            insert_round(env, rng, markers, *per_round)
            if round_no in plan:
                plan[round_no]()
            for _ in range(4):  # a kill every few dozen finished items, while this round runs
                target = finished(env) + rng.randint(20, 60)
                wait_until(
                    lambda target=target: finished(env) >= target or quiet(env),
                    timeout=60,
                    interval=0.05,
                    what="progress",
                    context=lambda: str(counts(env)),
                )
                chaos.kill_a_busy_worker()
        last_event = time.monotonic()
        wait_until(
            lambda: quiet(env),
            timeout=180,
            interval=0.5,
            what="every item and task terminal",
            context=lambda: f"{counts(env)}\n{daemons[0].log_tail(40)}",
        )
        quiesce = time.monotonic() - last_event
        if quiesce > 20:
            print(
                "\nlast to finish:",
                env.db.execute(
                    "SELECT id, task_id, status, remark, created_time, last_updated_time FROM download_item "
                    "ORDER BY last_updated_time DESC LIMIT 5"
                ),
            )
        figures = check(env, chaos, markers)
    finally:
        left = [pid for d in daemons for pid in d.close()]
        env.close()
        maria.close()
        red.close()
    assert not left, f"processes left behind: {left}"
    figures.update(time_to_quiesce=f"{quiesce:.1f}s", total=f"{time.monotonic() - started:.1f}s")
    print("\nchaos figures: " + json.dumps(figures))
    print("chaos events: " + "; ".join(chaos.events))


def flush(chaos: Chaos) -> None:
    chaos.red.flushall()
    chaos.events.append("Redis FLUSHALL")


def restart_redis(chaos: Chaos, daemons: list[Daemon]) -> None:
    chaos.red.stop()
    wait_until(
        lambda: any("WARNING outage:" in d.log_tail(400) for d in chaos.live()),
        timeout=10,
        what="the Redis outage noticed",
    )
    chaos.red.start()
    chaos.events.append("Redis restarted")


def check(env: Env, chaos: Chaos, markers: Path) -> dict:
    runs: dict[str, list[int]] = defaultdict(list)
    for line in markers.read_text().splitlines():
        if line.startswith("START"):
            _, item, pid = line.split()
            runs[item].append(int(pid))
    items = env.db.execute("SELECT id, task_id, status, remark FROM download_item")
    assert len(items) >= 4900, len(items)
    assert len(items) <= SINGLE_TASKS + MULTI_TASKS * PARTS + 3
    failed, requeued, duplicates, worker_died = 0, 0, [], 0
    for item in items:
        # Each run is N (untouched), K (we SIGKILLed its worker) or O (its master was killed).
        kinds = [
            "K" if pid in chaos.killed_workers else "O" if pid in chaos.orphaned else "N"
            for pid in runs.get(str(item["id"]), [])
        ]
        status, remark = item["status"], item["remark"] or ""
        died = status == ItemStatus.FAILED and remark == "worker died: signal SIGKILL"
        if any(kind != "O" for kind in kinds[:-1]):
            duplicates.append((item, kinds))  # only a lost owner may lead to another run
        elif not kinds:
            assert died, item  # claimed, then its worker killed before the export began
        elif kinds[-1] == "N":
            if status != ItemStatus.DONE:
                duplicates.append((item, kinds))
        elif kinds[-1] == "K":
            assert status == ItemStatus.DONE or died, (item, kinds)
        else:
            assert status == ItemStatus.DONE or remark.startswith("gave up:"), (item, kinds)
        requeued += "O" in kinds[:-1]
        worker_died += died
        failed += status == ItemStatus.FAILED
    assert duplicates == [], f"items run twice, or not DONE, without a kill: {duplicates[:10]}"
    assert worker_died <= len(chaos.killed_workers) + len(chaos.orphaned)
    assert requeued >= 1, "the killed master's item was not requeued and run again"
    for task in env.db.execute("SELECT id, status, remark FROM download_task_main WHERE sub_type = 16"):
        parts = env.db.execute("SELECT COUNT(*) AS n FROM download_item WHERE task_id = %s", (task["id"],))[
            0
        ]["n"]
        assert parts in (0, PARTS), (task, parts)  # split once, all or nothing
        assert parts or (
            task["status"] == TaskStatus.FAILED and task["remark"].startswith("split failed:")
        ), task
    c = counts(env)
    assert not any(c.get(k) for k in ("item:0", "item:1", "task:0", "task:1")), c
    return {
        "items": len(items),
        "worker_kills": len(chaos.killed_workers),
        "masters_killed": 1,
        "requeued_and_rerun": requeued,
        "failed": failed,
        "worker_died": worker_died,
        "duplicates": len(duplicates),
        "seed": SEED,
    }
