"""contract.md §3: initdb, submit, tasks, cancel and check, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.daemon import REPO


def cli(env, *args, config=None):
    return subprocess.run(
        [sys.executable, "-m", "dlsupervisor", *args, "-c", str(config or env.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def test_initdb_is_idempotent(env):
    for _ in range(2):
        result = cli(env, "initdb")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("ok: tables ready in ")
    assert env.db.execute("SELECT COUNT(*) AS n FROM download_task_main")[0]["n"] == 0


def test_submit_prints_the_new_task_id_and_creates_its_item(env):
    result = cli(
        env,
        "submit",
        "--subtype",
        "behaviour",
        "--org",
        "42",
        "--data",
        '{"do": "ok", "名": "😀"}',
        "--name",
        "月度报表",
    )
    assert result.returncode == 0, result.stderr
    task_id = int(result.stdout.strip())
    task = env.db.task(task_id)
    assert (task["org_id"], task["sub_type"], task["task_name"]) == (42, 15, "月度报表")
    assert json.loads(task["data"]) == {"do": "ok", "名": "😀"}
    (item,) = env.db.items_of(task_id)
    assert (item["status"], item["type"], item["data"]) == (0, 15, task["data"])


def test_submit_of_a_multi_item_subtype_creates_the_task_only(env):
    result = cli(env, "submit", "--subtype", "multi", "--org", "1", "--data", '{"parts": 2}')
    task_id = int(result.stdout)
    assert env.db.task(task_id)["status"] == 0 and env.db.items_of(task_id) == []


def test_submit_rejects_bad_input_in_one_line(env):
    bad_json = cli(env, "submit", "--subtype", "behaviour", "--org", "1", "--data", "{nope")
    assert bad_json.returncode == 2 and "--data is not JSON" in bad_json.stderr
    unknown = cli(env, "submit", "--subtype", "nosuch", "--org", "1")
    assert (
        unknown.returncode == 2 and "no [subtype:nosuch] section (known: behaviour, multi)" in unknown.stderr
    )
    for result in (bad_json, unknown):
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_tasks_shows_progress_counted_by_status(env):
    task_id, items = env.new_task({"do": "ok"}, items=5, status=1)
    for item_id, status in zip(items, (2, 2, 2, -1, 1), strict=True):
        env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (status, item_id))
    done_id, _ = env.new_task({"do": "ok"}, status=2)
    table = cli(env, "tasks").stdout
    line = next(row for row in table.splitlines() if row.startswith(f"{task_id} "))
    assert "PROCESSING" in line and "3/5 done, 1 failed, 1 running" in line, table
    listed = json.loads(cli(env, "tasks", "--json", "--status", "processing").stdout)
    assert [t["id"] for t in listed] == [task_id]
    assert listed[0]["progress"] == "3/5 done, 1 failed, 1 running"
    assert listed[0]["items"] == {"done": 3, "failed": 1, "processing": 1}
    assert [t["id"] for t in json.loads(cli(env, "tasks", "--json", "--status", "2").stdout)] == [done_id]
    assert len(json.loads(cli(env, "tasks", "--json", "--limit", "1").stdout)) == 1
    bad = cli(env, "tasks", "--status", "sideways")
    assert bad.returncode == 2 and "unknown status" in bad.stderr


def test_cancel_marks_the_task_and_refuses_finished_or_missing_ones(env):
    task_id, _ = env.new_task({"do": "ok"})
    result = cli(env, "cancel", str(task_id))
    assert result.returncode == 0 and result.stdout.strip() == f"task {task_id}: cancelled"
    assert env.db.task(task_id)["status"] == 4
    done_id, _ = env.new_task({"do": "ok"}, status=2)
    refused = cli(env, "cancel", str(done_id))
    assert refused.returncode == 1 and "is DONE; not cancelled" in refused.stderr
    assert env.db.task(done_id)["status"] == 2
    missing = cli(env, "cancel", "999999")
    assert missing.returncode == 1 and "no task 999999" in missing.stderr


def test_check_imports_handlers_and_reaches_the_backends(env):
    result = cli(env, "check")
    assert result.returncode == 0, result.stderr
    assert "ok: [subtype:behaviour] tests.hooks.behaviours:Behaviour: type 10, sub_type 15" in result.stdout
    assert "multi-item" in result.stdout
    assert "ok: database" in result.stdout
    assert (f"; driver {env.driver})" in result.stdout) == env.db_url.startswith("mysql"), result.stdout
    assert ("ok: redis" in result.stdout) == (env.redis_url is not None)


def test_check_reports_an_unreachable_database_in_one_line(env, tmp_path):
    config = tmp_path / "down.ini"
    config.write_text(
        "[database]\nurl = mysql://root:secret@127.0.0.1:1/nowhere\n"
        "[subtype:behaviour]\nhandler = tests.hooks.behaviours:Behaviour\n"
    )
    result = cli(env, "check", config=config)
    assert result.returncode == 1
    assert result.stderr.startswith("dlsupervisor: database:") and result.stderr.count("\n") == 1
    assert "secret" not in result.stderr + result.stdout


def test_start_refuses_a_handler_that_cannot_be_imported_with_exit_2(env, tmp_path):
    config = tmp_path / "bad-handler.ini"
    config.write_text(
        env.config_path.read_text() + "\n[subtype:broken]\nhandler = tests.hooks.nowhere:Gone\n"
    )
    result = cli(env, "start", config=config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"dlsupervisor: {config}: [subtype:broken] handler: cannot import")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
