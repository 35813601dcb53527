"""A daemon's worker imports a handler that sits beside the configuration file, and the
handler's own imports of modules beside it at export time (issue 11: the worker, not
handlers.load, keeps that directory on sys.path)."""

from __future__ import annotations

import uuid

from dlsupervisor.model import ItemStatus
from tests.helpers.daemon import Daemon
from tests.integration.test_handler_imports import HANDLER


def test_a_daemons_worker_imports_a_handler_beside_its_file_and_its_siblings(sqlite_env):
    env = sqlite_env
    name, sibling = f"beside_{uuid.uuid4().hex[:8]}", f"sibling_{uuid.uuid4().hex[:8]}"
    (env.tmp / f"{name}.py").write_text(HANDLER.format(extra="", sibling=sibling))  # beside the config
    (env.tmp / f"{sibling}.py").write_text('URL = "file:///beside"\n')
    d = Daemon(env, subtypes={"beside": {"handler": f"{name}:Beside", "workers": 1}})
    try:
        d.start()
        _, (item_id,) = env.new_task({"x": 1}, sub_type=61)
        d.wait_item(item_id, status=ItemStatus.DONE, url="file:///beside")
    finally:
        left = d.close()
    assert left == [], f"processes left behind: {left}"
