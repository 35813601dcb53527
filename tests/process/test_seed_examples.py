"""contract.md §6: the original library's scripts run unchanged on dlsupervisor.

The two examples of duyan-download-task's README are kept byte for byte in
tests/seed_examples/ and run as their users run them: `python FILE` in a
directory holding a seed-style config.ini, against tables created with the
seed's own DDL, with work inserted by SQL as a business application does.
A third script in the seed's style (multi_item_task.py) covers its multi-item
pattern, and a fourth (protected_task.py) shows that a standalone task script
gets the daemon's protection: timeouts, restarts, the drain on stop.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus
from tests.helpers import services
from tests.helpers.daemon import gone, title
from tests.helpers.db import Db
from tests.helpers.script import Script
from tests.helpers.wait import wait_until

EXAMPLES = Path(__file__).resolve().parents[1] / "seed_examples"
FAST = {"stop_timeout": 10, "kill_grace": 0.5, "min_uptime": 0.5, "max_backoff": 2}


def seed_config(db_url: str, prefix: str, **sections: dict[str, Any]) -> str:
    """The seed's [download_task] section (keyPrefix keeps parallel tests apart in Redis),
    plus any dlsupervisor sections given."""
    db, rd = urlsplit(db_url), urlsplit(services.REDIS_URL)
    lines = [
        "[download_task]",
        f"dbHost={db.hostname}",
        f"dbPort={db.port or 3306}",
        f"dbUser={db.username or 'root'}",
        f"dbPassword={db.password or ''}",
        f"dbName={db.path.lstrip('/')}",
        f"redisHost={rd.hostname}",
        f"redisPort={rd.port or 6379}",
        f"redisPassword={rd.password or ''}",
        f"redisDb={rd.path.lstrip('/') or '0'}",
        f"keyPrefix={prefix}",
    ]
    for name, values in sections.items():
        lines += ["", f"[{name}]", *(f"{key} = {value}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


@dataclass
class SeedWorld:
    db_url: str
    prefix: str
    work: Path
    db: Db
    scripts: list[Script] = field(default_factory=list)

    def configure(self, **sections: dict[str, Any]) -> None:
        (self.work / "config.ini").write_text(seed_config(self.db_url, self.prefix, **sections))

    def run(self, name: str, prefix: tuple[str, ...] = (), **env: str) -> Script:
        script = Script(EXAMPLES / name, self.work, env, prefix).start()
        self.scripts.append(script)
        return script

    def new_task(self, sub_type: int, data: Any, items: int = 1) -> tuple[int, list[int]]:
        """A task (status 0) and its items (status 0), inserted as the seed's users did."""
        text = json.dumps(data)
        task_id = self.db.insert(
            "download_task_main", org_id=7, task_name="t", platform=1, type=10, sub_type=sub_type, data=text
        )
        item_ids = [
            self.db.insert("download_item", task_id=task_id, org_id=7, type=sub_type, status=0, data=text)
            for _ in range(items)
        ]
        return task_id, item_ids

    def wait_row(self, table: str, row_id: int, timeout: float = 15.0, **expected: Any) -> dict[str, Any]:
        read = self.db.task if table == "task" else self.db.item

        def probe():
            row = read(row_id)
            return row if all(row[k] == v for k, v in expected.items()) else None

        return wait_until(probe, timeout=timeout, what=f"{table} {row_id} with {expected}", context=self.logs)

    def logs(self) -> str:
        return "\n".join(script.context() for script in self.scripts)


@pytest.fixture
def world(tmp_path):
    db_url = services.create_mysql_database()
    prefix = services.new_redis_prefix()
    db = Db(db_url)
    for statement in (EXAMPLES / "seed_schema.sql").read_text().split(";\n"):
        if statement.strip():
            db.execute(statement)
    work = tmp_path / "work"
    work.mkdir()
    seed = SeedWorld(db_url, prefix, work, db)
    seed.configure()
    try:
        yield seed
    finally:
        leaked = {script.path.name: left for script in seed.scripts if (left := script.close())}
        db.close()
        services.drop_mysql_database(db_url)
        services.drop_redis_prefix(prefix)
    assert not leaked, f"processes left behind: {leaked}"


def assert_clean_exit(script: Script, status: int) -> None:
    """Exit 0, nothing left in the session, and the script's last word is that it stopped."""
    assert status == 0, f"{script.path.name} exited {status}\n{script.log_tail()}"
    assert script.session() == [], script.context()
    log = script.log_tail(1000)
    assert log.splitlines()[-1].endswith("stopped") and "KeyboardInterrupt" not in log, log


# -- the README's examples, as written --------------------------------------------------------


def test_the_readme_examples_export_a_single_item_task(world):
    task_id, (item_id,) = world.new_task(15, {"contact_ids": [1, 2, 3]})
    world.run("scheduler_example.py")
    task_script = world.run("task_example.py")
    item = world.wait_row("item", item_id, status=ItemStatus.DONE)
    world.wait_row("task", task_id, status=TaskStatus.DONE)
    assert item["data"] == json.dumps({"contact_ids": [1, 2, 3]}), "data is input, never modified"
    assert item["expire_time"] is not None
    worker = task_script.worker("DemoTask#1 idle")
    assert title(task_script.proc.pid) == f"dlsupervisor: master -c {world.work / 'config.ini'}"
    assert worker != task_script.proc.pid
    assert "校验导出:[item:{'contact_ids': [1, 2, 3]}]" in task_script.log_tail(), "the handler's _logger"


def test_the_seed_multi_item_pattern_splits_a_task_into_two_items(world):
    world.configure(oss={"bucket": "reports"})  # the application's own section, as the seed allowed
    data = json.dumps({"month": "2024-05"})
    task_id = world.db.insert(
        "download_task_main", org_id=7, task_name="report", platform=1, type=11, sub_type=11, data=data
    )
    world.run("scheduler_example.py")
    world.run("multi_item_task.py")
    world.wait_row("task", task_id, status=TaskStatus.DONE)
    items = world.db.items_of(task_id)
    assert [i["status"] for i in items] == [ItemStatus.DONE, ItemStatus.DONE]
    for item in items:
        assert item["file_name"] == f"report-{task_id}-{item['id']}.csv"
        assert item["url"].endswith(item["file_name"]) and item["data"] == data and item["type"] == 11


STOPS = {"ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM, "sigquit": signal.SIGQUIT}


@pytest.mark.parametrize("stop", list(STOPS))
def test_ctrl_c_and_sigterm_stop_both_scripts_cleanly(world, stop):
    """Exit status 0, as the daemon's (contract.md §4), and no process left; SIGQUIT too."""
    scheduler = world.run("scheduler_example.py")
    task_script = world.run("task_example.py")
    task_id, _ = world.new_task(15, {"n": 1})
    world.wait_row("task", task_id, status=TaskStatus.DONE)
    scheduler.wait_log("scheduler: started")
    worker = task_script.worker("DemoTask#1 idle")
    for script in (task_script, scheduler):
        script.ctrl_c() if stop == "ctrl-c" else script.signal(STOPS[stop])
    assert_clean_exit(task_script, task_script.wait_exit())
    assert_clean_exit(scheduler, scheduler.wait_exit())
    assert "Traceback" not in task_script.log_tail(1000) + scheduler.log_tail(1000), world.logs()
    assert gone(worker)
    assert f"{STOPS[stop].name}: stopped" in scheduler.log_tail()


def test_sighup_stops_a_script_unless_it_was_started_under_nohup(world):
    """A closed terminal ends a script as SIGTERM would; `nohup python task.py &` survives it."""
    scheduler = world.run("scheduler_example.py")
    task_script = world.run("task_example.py", prefix=("nohup",))
    scheduler.wait_log("scheduler: started")
    task_script.worker("DemoTask#1 idle")
    scheduler.signal(signal.SIGHUP)
    task_script.signal(signal.SIGHUP)
    assert_clean_exit(scheduler, scheduler.wait_exit())
    world.run("scheduler_example.py")
    task_id, (item_id,) = world.new_task(15, {"after": "hangup"})
    world.wait_row("task", task_id, status=TaskStatus.DONE)
    assert task_script.proc.poll() is None
    task_script.signal(signal.SIGTERM)
    assert_clean_exit(task_script, task_script.wait_exit())


# -- the daemon's protection, in a standalone task script ----------------------------------


def test_ctrl_c_lets_in_flight_exports_finish(world):
    world.configure(supervisor=FAST)
    world.run("scheduler_example.py")
    task_script = world.run("protected_task.py", PROTECTED_MAX_JOB="2")
    task_script.worker("ProtectedTask#2 idle")  # max_job = worker processes
    task_id, (item_id,) = world.new_task(16, {"sleep": 1.5})
    task_script.busy_with(item_id)
    assert world.db.item(item_id)["remark"].startswith("running on ")
    task_script.ctrl_c()
    assert_clean_exit(task_script, task_script.wait_exit())
    assert world.db.item(item_id)["status"] == ItemStatus.DONE


def test_sigterm_past_stop_timeout_kills_the_export_and_requeues_its_item(world):
    world.configure(supervisor={**FAST, "stop_timeout": 0.5})
    world.run("scheduler_example.py")
    task_script = world.run("protected_task.py")
    task_id, (item_id,) = world.new_task(16, {"hang": True})
    worker = task_script.worker(f"ProtectedTask#1 item {item_id}")
    task_script.signal(signal.SIGTERM)
    assert_clean_exit(task_script, task_script.wait_exit())
    assert gone(worker)
    item = world.db.item(item_id)
    assert item["status"] == ItemStatus.READY and item["remark"].startswith("requeued:"), item


def test_a_hanging_export_times_out_and_a_fresh_worker_takes_the_next_item(world):
    world.configure(supervisor=FAST)
    world.run("scheduler_example.py")
    task_script = world.run("protected_task.py", PROTECTED_TIMEOUT="1")
    hung_task, (hung_item,) = world.new_task(16, {"hang": True})
    old = task_script.worker(f"ProtectedTask#1 item {hung_item}")
    item = world.wait_row("item", hung_item, status=ItemStatus.FAILED)
    assert item["remark"].startswith("timeout:"), item["remark"]
    wait_until(lambda: gone(old), what="the timed-out worker gone")
    world.wait_row("task", hung_task, status=TaskStatus.FAILED)
    next_task, (next_item,) = world.new_task(16, {"sleep": 0})
    item = world.wait_row("item", next_item, status=ItemStatus.DONE)
    assert item["url"] == f"pid:{task_script.worker('ProtectedTask#1 idle')}" != f"pid:{old}"


def test_a_worker_killed_with_sigkill_is_restarted_and_its_item_fails(world):
    world.configure(supervisor=FAST)
    world.run("scheduler_example.py")
    task_script = world.run("protected_task.py")
    task_id, (item_id,) = world.new_task(16, {"sleep": 60})
    old = task_script.worker(f"ProtectedTask#1 item {item_id}")
    os.kill(old, signal.SIGKILL)
    item = world.wait_row("item", item_id, status=ItemStatus.FAILED)
    assert item["remark"] == "worker died: signal SIGKILL"
    new = task_script.worker("ProtectedTask#1 idle")
    assert new != old
    next_task, (next_item,) = world.new_task(16, {"sleep": 0})
    assert world.wait_row("item", next_item, status=ItemStatus.DONE)["url"] == f"pid:{new}"
    world.wait_row("task", task_id, status=TaskStatus.FAILED)
