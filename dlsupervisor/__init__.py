"""dlsupervisor: a supervisor daemon and task framework for export jobs.

Public API (SPEC §6): DownloadTaskBase, SubTypeInfo, DownloadTaskScheduler,
submit and Client.  Models live in dlsupervisor.model.
"""

from dlsupervisor.client import Client, submit
from dlsupervisor.task import DownloadTaskBase, SubTypeInfo

__all__ = ["Client", "DownloadTaskBase", "SubTypeInfo", "submit"]
__version__ = "0.1.0"
