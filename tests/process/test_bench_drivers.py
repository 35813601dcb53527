"""`python -m bench.drivers` (bench/README.md, Drivers) in a tiny run: the harness still runs
every combination installed and its table has a row for each, so the figures the README
gives can be measured again.  Against the suite's MariaDB and Redis (the bench names its
database and keys per run and removes them)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from tests.helpers import services
from tests.helpers.daemon import REPO


def test_the_driver_measurement_runs_and_has_a_row_per_installed_combination():
    environ = {
        **os.environ,
        "DLSV_BENCH_MYSQL_URL": services.MYSQL_URL,
        "DLSV_BENCH_REDIS_URL": services.REDIS_URL,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.drivers", "--rounds", "1", "--items", "5"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and " + " in line]
    drivers = ["pymysql"] + (["mysqlclient"] if importlib.util.find_spec("MySQLdb") else [])
    parsers = ["redis-py"] + (["hiredis"] if importlib.util.find_spec("hiredis") else [])
    assert [row.split(" | ")[0][2:] for row in rows] == [f"{d} + {p}" for d in drivers for p in parsers], rows
    assert rows[0].endswith("| +0% |"), rows[0]
