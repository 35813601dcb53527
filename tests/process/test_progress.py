"""Progress of a running export, as the daemon shows it and the application reads it
(contract.md §9): visible while a 5 s export runs, written at most once a second."""

from __future__ import annotations

import json

from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.toolkit.output import PROGRESS_ROWS
from tests.helpers import progress
from tests.helpers.wait import wait_until
from tests.process.test_daemon import busy_pid, config, submit

EXPORT_SECONDS = 5.0


def tasks_row(daemon, task_id: int) -> str | None:
    """The PROGRESS cell of the task's row in `tasks` (columns are aligned, cells hold spaces)."""
    lines = daemon.cli("tasks").stdout.splitlines()
    start = lines[0].find("PROGRESS")
    end = lines[0].find("CREATED")
    row = next(line for line in lines[1:] if line.split()[0] == str(task_id))
    return row[start:end].strip() if start >= 0 else None


def test_progress_is_visible_while_an_export_runs_and_written_at_most_once_a_second(env, daemon):
    d = daemon(**config(workers=1, timeout=30)).start()
    progress.count_writes(env.db)
    task_id, item_id = submit(env, {"do": "progress", "steps": 250, "seconds": EXPORT_SECONDS})
    busy_pid(d, item_id)

    def midway():
        row = progress.row(env.db, item_id)
        return row if row and 0 < row["done"] < 2500 else None

    row = wait_until(midway, timeout=EXPORT_SECONDS, what="progress in dlsupervisor_progress")
    assert (row["task_id"], row["total"]) == (task_id, 2500)
    shown = wait_until(
        lambda: (lambda cell: cell if cell and cell.endswith("%") and cell != "100%" else None)(
            tasks_row(d, task_id)
        ),
        timeout=EXPORT_SECONDS,
        what="a percentage in tasks' PROGRESS column",
    )
    assert 0 < int(shown[:-1]) < 100
    status = json.loads(d.cli("status", "--json").stdout)
    busy = next(c for c in status["children"] if c["item"] == item_id)
    assert busy["progress_total"] == 2500 and busy["progress_done"] > 0
    d.wait_item(item_id, timeout=EXPORT_SECONDS + 10, status=ItemStatus.DONE)
    d.wait_task(task_id, status=TaskStatus.DONE)
    assert progress.writes(env.db) <= EXPORT_SECONDS + 2  # 250 reports, about one write a second
    listed = json.loads(d.cli("tasks", "--json").stdout)
    assert next(t for t in listed if t["id"] == task_id)["export_progress"]["text"] == "100%"
    assert tasks_row(d, task_id) == "100%"


TOOLKIT = {"handler": "tests.hooks.toolkit_hooks:ToolkitExport", "workers": 1, "timeout": 30}
ROWS = 5000  # reported every PROGRESS_ROWS (1000) rows; a pause after each report


def test_open_output_with_a_total_reports_its_rows_into_the_progress_table(env, daemon, tmp_path):
    d = daemon(**config(toolkit=TOOLKIT), storage={"path": tmp_path / "files"}).start()
    data = {"name": "rows.csv", "generate": ROWS, "total": True, "pause": 0.6}
    task_id, [item_id] = env.new_task(data, sub_type=25)

    def midway():
        row = progress.row(env.db, item_id)
        return row if row and 0 < row["done"] < ROWS else None

    row = wait_until(
        midway, timeout=15, what="open_output's rows in dlsupervisor_progress", context=d.context
    )
    assert (row["task_id"], row["total"]) == (task_id, ROWS)
    assert row["done"] % PROGRESS_ROWS == 0  # a report from the parts' limit check, not per row
    d.wait_item(item_id, timeout=20, status=ItemStatus.DONE)
    listed = json.loads(d.cli("tasks", "--json").stdout)
    assert next(t for t in listed if t["id"] == task_id)["export_progress"]["text"] == "100%"
