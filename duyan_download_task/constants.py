"""duyan_download_task.constants: the status enums (seed names FAIL, VALID, EXCEED, CANCEL kept)."""

from dlsupervisor.model import ItemStatus, TaskStatus

__all__ = ["ItemStatus", "TaskStatus"]
