"""duyan_download_task.task: the handler API under the original's import path."""

from dlsupervisor.task import DownloadTaskBase, SubTypeInfo

__all__ = ["DownloadTaskBase", "SubTypeInfo"]
