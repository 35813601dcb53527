"""The README's quickstart, run as written, with no servers: a fresh copy of the project, a
fresh virtual environment (pip reaches the package index for the `xlsx` extra), and the
daemon in a network namespace where MariaDB and Redis cannot be reached (when unshare is
allowed), producing files a user can open: CSVs, a zip and an XLSX workbook."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import openpyxl
import pytest

from tests.helpers.daemon import REPO
from tests.helpers.db import Db
from tests.helpers.wait import wait_until


def quickstart_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    return re.findall(r"```sh\n(.*?)```", section, re.S)[:2]


def copy_project(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        source = REPO / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)


def stored(project: Path, item: dict) -> Path:
    """An item's file in the quickstart's local storage (its url is a signed web link)."""
    return (
        project
        / "var/files"
        / str(item["org_id"])
        / str(item["task_id"])
        / str(item["id"])
        / item["file_name"]
    )


def isolated() -> list[str]:
    """Run without a network when possible: nothing can reach MariaDB or Redis."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"]).returncode == 0:
        return ["unshare", "--net"]
    return []


@pytest.mark.timeout(300)
def test_the_readme_quickstart_produces_files_with_no_servers(tmp_path):
    install_and_start, try_it = quickstart_blocks()
    install, start = install_and_start.strip().rsplit(" && ", 1)
    assert start.startswith(".venv/bin/dlsupervisor start"), start
    project = tmp_path / "project"
    copy_project(project)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DLSUPERVISOR_", "VIRTUAL_ENV"))}
    environ["PATH"] = os.pathsep.join(p for p in environ["PATH"].split(os.pathsep) if ".venv" not in p)
    environ.pop("PYTHONPATH", None)
    subprocess.run(["bash", "-c", install], cwd=project, env=environ, check=True, timeout=240)

    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [*isolated(), "bash", "-c", f"exec {start}"],
            cwd=project,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "master: ready" in (tmp_path / "daemon.log").read_text(),
            timeout=30,
            what="the daemon ready",
            context=lambda: (tmp_path / "daemon.log").read_text(),
        )
        submits = [line for line in try_it.splitlines() if " submit " in line]
        rest = [line for line in try_it.splitlines() if line.strip() and " submit " not in line]
        for line in submits:
            run(line, project, environ)
        db = Db(f"sqlite:///{project}/var/dl.db")

        def finished():
            rows = db.execute("SELECT status FROM download_task_main ORDER BY id")
            return len(rows) == 3 and all(r["status"] == 2 for r in rows)

        wait_until(
            finished,
            timeout=30,
            what="the three tasks DONE",
            context=lambda: (tmp_path / "daemon.log").read_text(),
        )
        shown = "".join(run(line, project, environ) for line in rest)
        assert "3/3 done" in shown and "1/1 done" in shown, shown
        assert "task-2.zip" in shown and "李雷,555-0101" in shown, shown
        assert "var/files/1/3/5/calls-by-day.xlsx" in shown, shown
        items = db.execute("SELECT * FROM download_item ORDER BY id")
        assert len(items) == 5
        for item in items:
            assert item["url"].startswith(f"http://127.0.0.1:8480/d/{item['id']}?e="), item["url"]  # [web]
            path = stored(project, item)
            assert path.is_file(), item
            assert hashlib.md5(path.read_bytes()).hexdigest() == item["md5_value"]
        sheet = openpyxl.load_workbook(stored(project, items[-1])).active
        rows = list(sheet.iter_rows(values_only=True))
        assert rows == [
            ("day", "calls", "minutes"),
            (dt.datetime(2026, 11, 1), 42, 63.5),
            (dt.datetime(2026, 11, 2), 7, 9.25),
        ]
        db.close()
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            assert daemon.wait(30) == 0
        finally:
            with_pids = subprocess.run(
                ["pgrep", "-s", str(daemon.pid)], capture_output=True, text=True
            ).stdout
            for pid in with_pids.split():
                os.kill(int(pid), signal.SIGKILL)


def run(line: str, cwd: Path, environ: dict[str, str]) -> str:
    result = subprocess.run(
        [*isolated(), "bash", "-c", line], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (line, result.stdout, result.stderr)
    return result.stdout
