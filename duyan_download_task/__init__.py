"""duyan-download-task's import path, served by dlsupervisor: re-exports only, no logic.

Code written for the original library keeps its imports; see README
"Migrating from duyan-download-task".
"""

from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.standalone import DownloadTaskScheduler

__all__ = ["DownloadTaskBase", "DownloadTaskScheduler", "SubTypeInfo"]
