"""duyan_download_task.model: dlsupervisor's models under the original's import path."""

from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus, TaskStatus

__all__ = ["DownloadItem", "DownloadTaskMain", "ItemStatus", "TaskStatus"]
