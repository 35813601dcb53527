"""dlsupervisor: a supervisor daemon and task framework for export jobs.

Public API (contract.md §6): DownloadTaskBase, SubTypeInfo, DownloadTaskScheduler,
submit and Client.  Models live in dlsupervisor.model.
"""

from __future__ import annotations

from typing import Any

from dlsupervisor.client import Client, submit
from dlsupervisor.task import DownloadTaskBase, SubTypeInfo

__all__ = ["Client", "DownloadTaskBase", "DownloadTaskScheduler", "SubTypeInfo", "submit"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """DownloadTaskScheduler on first use: it pulls in the scheduler and the master, which
    an application that only submits (or the CLI) should not pay for at import."""
    if name == "DownloadTaskScheduler":
        from dlsupervisor.standalone import DownloadTaskScheduler

        return DownloadTaskScheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
