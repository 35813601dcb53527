"""duyan_download_task.scheduler: the standalone scheduler under the original's import path."""

from dlsupervisor.standalone import DownloadTaskScheduler

__all__ = ["DownloadTaskScheduler"]
