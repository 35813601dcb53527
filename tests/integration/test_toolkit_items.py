"""contract.md §7 through the worker: what an item ends as when its hook uses the toolkit."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from dlsupervisor.model import ItemStatus
from tests.helpers.env import TOOLKIT_SUBTYPES


def configure(env, **storage):
    files = env.tmp / "files"
    env.write_config(subtypes=TOOLKIT_SUBTYPES, storage={"path": files, **storage})
    return files


def run_one(env, data, loops=None):
    scheduler, worker = loops or (env.scheduler(), env.worker("toolkit"))
    worker.register()
    task_id, (item_id,) = env.new_task(data, sub_type=25)
    scheduler.tick()
    assert worker.run_once(timeout=2), "no work was delivered to the worker"
    return env.db.item(item_id)


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_toolkit_export_is_done_with_its_file_stored_and_recorded(env):
    files = configure(env)
    item = run_one(env, {"name": "联系人.csv", "columns": ["a"], "rows": [["x"]]})
    assert item["status"] == ItemStatus.DONE, item["remark"]
    path = Path(item["url"].removeprefix("file://"))
    assert path == files / "7" / str(item["task_id"]) / str(item["id"]) / "联系人.csv"
    assert item["file_name"] == "联系人.csv"
    assert hashlib.md5(path.read_bytes()).hexdigest() == item["md5_value"]
    (row,) = env.db.execute("SELECT * FROM dlsupervisor_file")
    assert row["item_id"] == item["id"] and row["storage_key"].endswith("/联系人.csv")
    assert row["deleted_time"] is None and row["next_try"] is not None
    assert files_in(files) == [path]  # the worker's temporary directory is empty


def test_a_hook_raising_mid_file_fails_the_item_and_leaves_no_file(sqlite_env):
    files = configure(sqlite_env)
    item = run_one(sqlite_env, {"name": "half.xlsx", "rows": [["a"], ["b"]], "raise_at": 1})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"] == "export failed: RuntimeError: boom mid-file"
    assert files_in(files) == []
    assert sqlite_env.db.execute("SELECT * FROM dlsupervisor_file") == []


def test_a_name_with_dot_dot_is_sanitised(sqlite_env):
    files = configure(sqlite_env)
    item = run_one(sqlite_env, {"do": "file", "name": "../../../x.csv", "body": "1"})
    assert item["status"] == ItemStatus.DONE, item["remark"]
    assert item["file_name"] == "x.csv"
    assert Path(item["url"].removeprefix("file://")).parent.parent.parent.parent == files
    assert not (sqlite_env.tmp / "x.csv").exists()


def test_an_unknown_suffix_fails_the_item_with_a_value_error(sqlite_env):
    configure(sqlite_env)
    item = run_one(sqlite_env, {"name": "x.pdf", "rows": []})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith("export failed: ValueError: open_output: 'x.pdf': unknown format")


def test_xlsx_without_the_extra_fails_naming_it(sqlite_env, monkeypatch):
    configure(sqlite_env)
    monkeypatch.setitem(sys.modules, "xlsxwriter", None)  # as if not installed
    item = run_one(sqlite_env, {"name": "x.xlsx", "rows": [[1]]})
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith("export failed: MissingExtra: .xlsx needs XlsxWriter")
    assert "dlsupervisor[xlsx]" in item["remark"]


def test_a_storage_failure_fails_the_item_as_storage_and_the_worker_goes_on(sqlite_env):
    files = configure(sqlite_env)
    files.mkdir()
    (files / "7").write_text("a file where the org's directory should be")
    loops = sqlite_env.scheduler(), sqlite_env.worker("toolkit")
    item = run_one(sqlite_env, {"do": "file", "name": "a.csv", "body": "1"}, loops)
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith("export failed: storage: "), item["remark"]
    (files / "7").unlink()
    assert (
        run_one(sqlite_env, {"do": "file", "name": "a.csv", "body": "1"}, loops)["status"] == ItemStatus.DONE
    )


def test_rolled_over_parts_come_back_as_one_zip(sqlite_env):
    configure(sqlite_env)
    item = run_one(sqlite_env, {"name": "big.csv", "columns": ["n"], "rows": [[1], [2], [3]], "max_rows": 2})
    assert item["status"] == ItemStatus.DONE, item["remark"]
    assert item["file_name"] == "big.zip"


@pytest.mark.parametrize("name", ["a.csv"])
def test_store_zip_through_the_worker(sqlite_env, name):
    configure(sqlite_env)
    item = run_one(sqlite_env, {"do": "zip", "name": "z", "files": {name: "1,2"}})
    assert item["status"] == ItemStatus.DONE and item["file_name"] == "z.zip"
