"""bench/README.md's command, run as written on a fresh copy of the project: a new virtual
environment with only the `bench` extra (not `test`: whatever the bench or its peers import
at run time must come with `.[bench]`), then `python -m bench` in its quick mode, against
the suite's MariaDB and Redis (the bench names its databases and keys per run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers.daemon import REPO
from tests.process.test_quickstart import copy_project


def command_lines() -> list[str]:
    """The shell lines of bench/README.md's "The command" block, comments dropped."""
    section = (REPO / "bench/README.md").read_text().split("## The command", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "bench/README.md: no sh block under 'The command'"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def base_python() -> str:
    """The interpreter under the test runner's venv, so the new venv shares nothing with it."""
    return getattr(sys, "_base_executable", None) or sys.executable


@pytest.mark.timeout(600)
def test_the_bench_readme_command_runs_quick_in_a_fresh_venv(tmp_path):
    create, install, bench = command_lines()
    assert create == "python3 -m venv .venv", create
    assert install == ".venv/bin/pip install -e '.[bench]'", install
    assert bench == ".venv/bin/python -m bench", bench
    project = tmp_path / "project"
    copy_project(project)
    environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    environ["PATH"] = os.pathsep.join(p for p in environ["PATH"].split(os.pathsep) if ".venv" not in p)

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, cwd=project, env=environ, capture_output=True, text=True, timeout=timeout)
        shown = f"{done.stdout[-3000:]}{done.stderr[-6000:]}"
        assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{shown}"
        return done

    run([base_python(), "-m", "venv", ".venv"], 60)
    # As written, quieter and without compiling every installed module (pandas' tests...) to
    # bytecode up front: a third of the install's CPU, and not what this test is about.
    run([".venv/bin/pip", "install", "-q", "--no-compile", "-e", ".[bench]"], 300)
    done = run([".venv/bin/python", "-m", "bench", "--quick"], 300)

    out, err = done.stdout, done.stderr
    assert "| measure | dlsupervisor | Celery | RQ | raw DB |" in out, out
    rows = (
        "no-op items, 4 workers (items/s)",
        "pickup: `submit()`",
        "timeout 1 s:",
        "SIGKILL of a busy worker",
        "scheduler idle pass",
        "idle memory, summed RSS / PSS (MB)",
    )
    for row in rows:
        assert row in out, (row, out)
    for case in ("| csv |", "| xlsx_toolkit |", "| openpyxl |", "| pandas |", "| zip_toolkit |"):
        assert case in out, (case, out)  # pandas' case is skipped, silently, when it cannot be imported
    assert "Traceback" not in err, err
