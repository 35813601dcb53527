"""The RQ job doing dlsupervisor's per-item work, and its failure hooks.

A job timeout raises inside the work horse, whose `on_failure` callback writes
`timeout:`; a horse that dies (SIGKILL, segfault) is reported to the worker's
`work_horse_killed_handler`, which writes `worker died:`.
"""

from __future__ import annotations

import os
from typing import Any

from bench import dbwork
from bench.exports import run_export


def export_item(item_id: int, data: dict[str, Any]) -> None:
    conn = dbwork.connection()
    claim_token = dbwork.token()
    if not dbwork.claim(conn, item_id, claim_token):
        return
    run_export(item_id, data)
    dbwork.succeed(conn, item_id, claim_token)


def record_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """on_failure callback, run in the horse (a job timeout lands here)."""
    name = exc_type.__name__ if exc_type else "error"
    prefix = "timeout:" if "Timeout" in name else "export failed:"
    dbwork.fail(dbwork.connection(), job.args[0], f"{prefix} {name}: {exc_value}")


def horse_killed(job, retpid: int, ret_val: int, rusage) -> None:
    """Run in the worker when its horse died without reporting."""
    how = f"signal {os.WTERMSIG(ret_val)}" if os.WIFSIGNALED(ret_val) else f"exit code {ret_val}"
    dbwork.fail(dbwork.connection(), job.args[0], f"worker died: {how}")
