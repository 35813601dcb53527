"""What the master holds when it forks, every child holds too (bench/README.md, "Idle memory").

The master imports its own modules and the backends every child uses (the stores, the
Redis queue, the scheduler: preloaded, so the pages are shared), never what only an
export or the web child needs.  Run in a fresh interpreter: this test process has
imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Everything `dlsupervisor start` on MySQL has imported by the time Master.preload() is done
# (its store is the configured one only: open_store imports it).
MASTER_IMPORTS = """
import json, sys
from dlsupervisor import cli
from dlsupervisor.supervisor import Master, preflight
from dlsupervisor.store import schema, mysql
import dlsupervisor.queue.redis, dlsupervisor.scheduler, dlsupervisor.spawn
print(json.dumps(sorted(sys.modules)))
"""

# Imported where used only: an export's format or storage, the web child.
LAZY = (
    "boto3",
    "botocore",
    "xlsxwriter",
    "openpyxl",
    "waitress",
    "prometheus_client",
    "dlsupervisor.storage.s3",
    "dlsupervisor.web.app",
    "dlsupervisor.web.server",
    "dlsupervisor.web.metrics",
    "dlsupervisor.web.dashboard",
    "daemon",  # python-daemon: only `start --daemon`
    "sqlite3",  # on MySQL: SQLite's library is 0.8 MB the master alone would touch
)


def master_modules() -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", MASTER_IMPORTS], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


def test_the_master_does_not_import_what_only_exports_or_the_web_child_use():
    loaded = master_modules()
    assert "dlsupervisor.scheduler" in loaded  # the probe imported what the master does
    found = sorted(name for name in loaded if name.split(".")[0] in LAZY or name in LAZY)
    assert found == []
