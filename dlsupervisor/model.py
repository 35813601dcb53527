"""Rows of the two tables as plain objects, and the status numbers of contract.md §1.

The classes keep the seed's shape: `DownloadItem()` then attribute assignment,
or `DownloadItem(row_dict)`, so seed code that builds items keeps working.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any, ClassVar


class ItemStatus(IntEnum):
    FAILED = -1
    READY = 0
    PROCESSING = 1
    DONE = 2
    EXPIRED = 3
    CANCELLED = 4

    # The seed's names, kept for code written against it.
    FAIL = -1
    VALID = 2
    EXCEED = 3
    CANCEL = 4


class TaskStatus(IntEnum):
    FAILED = -1
    READY = 0
    PROCESSING = 1
    DONE = 2
    EXPIRED = 3
    CANCELLED = 4

    FAIL = -1
    VALID = 2
    EXCEED = 3
    CANCEL = 4


class Model:
    """A row: every column an attribute, None when absent."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, res: dict[str, Any] | None = None, **values: Any) -> None:
        for name in self.FIELDS:
            setattr(self, name, None)
        self.columns: dict[str, Any] = {}
        if res:
            self.load(res)
        for name, value in values.items():
            setattr(self, name, value)

    def load(self, res: dict[str, Any]) -> None:
        self.columns = dict(res)
        for name in self.FIELDS:
            setattr(self, name, res.get(name))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name, None) for name in self.FIELDS}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={getattr(self, 'id', None)!r})"


class DownloadTaskMain(Model):
    FIELDS = (
        "id",
        "org_id",
        "task_name",
        "platform",
        "type",
        "sub_type",
        "description",
        "status",
        "top",
        "data",
        "notify",
        "remark",
        "created_by",
        "created_time",
        "last_updated_time",
    )
    id: int | None
    org_id: int | None
    task_name: str | None
    sub_type: int | None
    status: int | None
    data: str | None
    remark: str | None
    created_time: datetime | None


class DownloadItem(Model):
    FIELDS = (
        "id",
        "task_id",
        "org_id",
        "type",
        "file_name",
        "target_id",
        "expire_time",
        "download_times",
        "url",
        "status",
        "data",
        "remark",
        "md5_value",
        "created_time",
        "last_updated_time",
    )
    id: int | None
    task_id: int | None
    org_id: int | None
    type: int | None
    file_name: str | None
    expire_time: datetime | None
    url: str | None
    status: int | None
    data: str | None
    remark: str | None
    md5_value: str | None
