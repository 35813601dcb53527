"""contract.md §7, "Nothing half-made is ever visible", with a real daemon: an export killed
(SIGKILL, or its timeout) mid-file leaves no file in storage, and the master removes the dead
worker's temporary directory."""

from __future__ import annotations

import os
import signal

import pytest

from dlsupervisor.model import ItemStatus
from tests.helpers.daemon import Daemon, gone
from tests.helpers.wait import wait_until
from tests.process.test_daemon import FAST, marker_lines

HANDLER = "tests.hooks.toolkit_hooks:ToolkitExport"


@pytest.fixture
def daemon_on(sqlite_env):
    made = []

    def make(timeout):
        files = sqlite_env.tmp / "files"
        d = Daemon(
            sqlite_env,
            subtypes={"toolkit": {"handler": HANDLER, "workers": 1, "timeout": timeout}},
            supervisor={**FAST},
            scheduler={"poll_interval": 0.05},
            storage={"path": files},
        )
        made.append(d)
        return d.start(), files

    yield make
    for d in made:
        d.close()


def hang(env, log):
    data = {"name": "big.xlsx", "columns": ["a"], "rows": [["x"]] * 3, "hang_at": 1, "log": str(log)}
    task_id, (item_id,) = env.new_task(data, sub_type=25)
    wait_until(lambda: marker_lines(log, "HANG"), what="the export hanging mid-file")
    pid = int(marker_lines(log, "HANG")[0][2])
    return item_id, pid


def stored(files):
    """Every file in storage, the workers' temporary directories aside."""
    return [p for p in files.rglob("*") if p.is_file() and ".tmp" not in p.relative_to(files).parts]


@pytest.mark.parametrize("how", ["sigkill", "timeout"])
def test_a_killed_export_leaves_nothing_and_its_temporary_directory_goes(
    sqlite_env, daemon_on, tmp_path, how
):
    d, files = daemon_on(timeout=1.5 if how == "timeout" else 60)
    item_id, pid = hang(sqlite_env, tmp_path / "markers")
    scratch = files / ".tmp" / f"worker-{pid}"
    assert [p.name for p in scratch.rglob("*") if p.is_file()] == ["big.xlsx"]  # half made, private
    if how == "sigkill":
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: gone(pid), timeout=10, what="the worker gone", context=d.context)
    wait_until(
        lambda: not scratch.exists(), timeout=5, what="its temporary directory removed", context=d.context
    )
    assert stored(files) == []
    if how == "timeout":
        item = d.wait_item(item_id, status=ItemStatus.FAILED, timeout=10)
        assert "timeout" in (item["remark"] or ""), item["remark"]
    assert sqlite_env.db.execute("SELECT * FROM dlsupervisor_file") == []
