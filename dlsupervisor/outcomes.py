"""What one attempt at an item, a split, or a whole task ends as (contract.md §5).  Pure functions.

User hooks are called here and nowhere else; every exception they raise
becomes a remark, except Aborted (the master stopping the export).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from dlsupervisor import remarks
from dlsupervisor.errors import Aborted
from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus, TaskStatus
from dlsupervisor.storage.base import StorageError
from dlsupervisor.store import Outcome, Tally
from dlsupervisor.task import DownloadTaskBase
from dlsupervisor.toolkit.session import exporting

# download_item column sizes: a result that does not fit fails the item instead of the write.
URL_MAX, MD5_MAX, FILE_NAME_MAX, DATA_MAX = 1024, 45, 256, 1024


def failed(remark: str) -> Outcome:
    return Outcome(int(ItemStatus.FAILED), remarks.fit(remark))


def check_data(item: DownloadItem) -> str | None:
    """The `invalid data:` remark for an item that cannot be exported, else None."""
    data = item.data
    if data is None or not str(data).strip():
        return f"{remarks.INVALID_DATA} data is empty"
    try:
        json.loads(data)
    except ValueError as exc:
        return remarks.fit(f"{remarks.INVALID_DATA} not JSON ({exc})")
    if not item.org_id:
        return f"{remarks.INVALID_DATA} org_id is missing"
    return None


def export_item(handler: DownloadTaskBase, item: DownloadItem) -> Outcome:
    """Validate, then export; map every way it can end to an Outcome."""
    problem = check_data(item)
    if problem:
        return failed(problem)
    try:
        data_obj = handler.get_validated_data_params(item.id, item.data)
    except Aborted:
        raise
    except BaseException as exc:
        return failed(remarks.error_text(remarks.REJECTED, exc))
    if data_obj is None:
        return failed(f"{remarks.REJECTED} get_validated_data_params returned None")
    with exporting(handler, item) as toolkit:
        try:
            outcome = check_result(handler.export(item, data_obj))
            if outcome.status == ItemStatus.DONE:
                toolkit.commit()  # the toolkit's files reach storage only now (contract.md §7)
        except Aborted:
            raise
        except StorageError as exc:
            return failed(f"{remarks.EXPORT_FAILED} storage: {exc}")
        except BaseException as exc:
            return failed(remarks.error_text(remarks.EXPORT_FAILED, exc))
    return outcome


def check_result(result: Any) -> Outcome:
    """(url, md5, file_name), each text or None and fitting its column, is DONE."""
    bad = f"{remarks.EXPORT_FAILED} bad return value"
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return failed(f"{bad} (expected (url, md5, file_name), got {type(result).__name__})")
    values = []
    columns = (("url", URL_MAX), ("md5", MD5_MAX), ("file_name", FILE_NAME_MAX))
    for value, (name, limit) in zip(result, columns, strict=True):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if value is not None and not isinstance(value, str):
            return failed(f"{bad} ({name} is {type(value).__name__}, not text)")
        if value is not None and len(value) > limit:
            return failed(f"{bad} ({name} is longer than {limit} characters)")
        values.append(value)
    url, md5, file_name = values
    return Outcome(int(ItemStatus.DONE), None, url, md5, file_name)


def check_split(task: DownloadTaskMain, items: Any) -> tuple[list[DownloadItem], str | None]:
    """The items to insert for a split, or the reason the split failed."""
    if not isinstance(items, (list, tuple)) or not items:
        return [], f"{remarks.SPLIT_FAILED} split_task returned no items"
    prepared = []
    for item in items:
        if isinstance(item, dict):
            item = DownloadItem(item)
        if not isinstance(item, DownloadItem):
            kind = type(item).__name__
            return [], f"{remarks.SPLIT_FAILED} split_task returned a {kind}, not a DownloadItem"
        data = item.data if item.data is not None else task.data
        if data is not None and len(data) > DATA_MAX:
            return [], f"{remarks.SPLIT_FAILED} an item's data is longer than {DATA_MAX} characters"
        if item.file_name is not None and len(item.file_name) > FILE_NAME_MAX:
            return [], f"{remarks.SPLIT_FAILED} an item's file_name is longer than {FILE_NAME_MAX} characters"
        prepared.append(
            DownloadItem(
                task_id=task.id,
                org_id=item.org_id if item.org_id is not None else task.org_id,
                type=item.type if item.type is not None else task.sub_type,
                file_name=item.file_name,
                target_id=item.target_id,
                expire_time=item.expire_time,
                data=data,
            )
        )
    return prepared, None


def decide_task(tally: Tally) -> tuple[int, int, str | None]:
    """(task_id, status, remark) for a PROCESSING task whose items are all terminal."""
    if tally.done:
        return (
            tally.task_id,
            int(TaskStatus.DONE),
            remarks.rollup_remark(tally.total, tally.done, tally.failed),
        )
    failure = tally.first_failure or "failed"
    if tally.failed == tally.total:
        if tally.total == 1:
            return tally.task_id, int(TaskStatus.FAILED), remarks.fit(failure)
        text = f"all {tally.total} files failed; first: {failure}"
        return tally.task_id, int(TaskStatus.FAILED), remarks.fit(text)
    if tally.expired:
        return tally.task_id, int(TaskStatus.EXPIRED), None
    text = f"no file ready ({tally.failed} of {tally.total} failed, the rest cancelled)"
    return tally.task_id, int(TaskStatus.FAILED), text


def describe(outcome: Outcome) -> str:
    """A log phrase for an outcome."""
    if outcome.status == ItemStatus.DONE:
        return f"done ({outcome.file_name})"
    return outcome.remark or str(outcome.status)


_COUNT_NAMES = MappingProxyType(
    {
        ItemStatus.DONE: "done",
        ItemStatus.FAILED: "failed",
        ItemStatus.EXPIRED: "expired",
        ItemStatus.CANCELLED: "cancelled",
        ItemStatus.PROCESSING: "running",
        ItemStatus.READY: "waiting",
    }
)


def summarise_counts(counts: dict[int, int], order: Sequence[int] = tuple(_COUNT_NAMES)) -> str:
    """`3/5 done, 1 failed, 1 running` for a task's items counted by status."""
    total = sum(counts.values())
    parts = [f"{counts.get(ItemStatus.DONE, 0)}/{total} done"]
    parts += [f"{counts[s]} {_COUNT_NAMES[s]}" for s in order[1:] if counts.get(s)]
    return ", ".join(parts)
