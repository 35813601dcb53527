"""For business code and the CLI: create work, read it back, cancel it.

`submit` inserts the task (and its item, for single-item subtypes) in one
transaction and sends the wake-up at once, so an idle worker starts within
milliseconds instead of waiting for the scheduler's next pass.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dlsupervisor import config, handlers, queue
from dlsupervisor.config import Settings
from dlsupervisor.errors import ConfigError, QueueUnavailable, StoreUnavailable
from dlsupervisor.model import DownloadItem, DownloadTaskMain, TaskStatus
from dlsupervisor.queue import open_queue
from dlsupervisor.store import ApplicationStore, TaskSummary, open_store
from dlsupervisor.task import SubTypeInfo

log = logging.getLogger("dlsupervisor.client")


class Client:
    def __init__(self, settings: Settings | str) -> None:
        self.settings = config.load(settings) if isinstance(settings, str) else settings
        store = open_store(self.settings.database)
        self.store: ApplicationStore = store
        self.queue = open_queue(self.settings, store)
        self._infos: dict[str, SubTypeInfo] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.queue.close()
        self.store.close()

    def subtype_info(self, subtype: str) -> SubTypeInfo:
        """The subtype's routing, from its section (importing its handler if needed)."""
        if subtype not in self._infos:
            sub = self.settings.subtype(subtype)
            if sub is None:
                known = ", ".join(s.name for s in self.settings.subtypes) or "none"
                raise ConfigError(f"{self.settings.path}: no [subtype:{subtype}] section (known: {known})")
            self._infos[subtype] = handlers.load(self.settings, sub)[1]
        return self._infos[subtype]

    def submit(
        self,
        subtype: str,
        org_id: int,
        data: str | dict[str, Any] | list[Any] | None = None,
        name: str | None = None,
        *,
        platform: int = 0,
        description: str | None = None,
        created_by: int = 0,
    ) -> int:
        """Create a task of `subtype` for `org_id`; return its id."""
        info = self.subtype_info(subtype)
        text = data if data is None or isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        multi = bool(info.is_multi_task)
        task = DownloadTaskMain(
            org_id=org_id,
            task_name=(name or info.task_name)[:64],
            platform=platform,
            type=info.type,
            sub_type=info.sub_type,
            description=description,
            status=int(TaskStatus.READY if multi else TaskStatus.PROCESSING),
            data=text,
            created_by=created_by,
        )
        item = None if multi else DownloadItem(org_id=org_id, type=info.sub_type, data=text)
        task_id, item_id = self.store.submit(task, item)
        message = queue.split_message(task_id) if multi else queue.item_message(item_id)
        try:  # an item queues at its place in its org's line (fairness, contract §9)
            refs = [] if item_id is None else self.store.ranked_items([item_id])
            self.queue.push(info.queue_key, [message], [(r.top, r.pos) for r in refs] or None)
        except (QueueUnavailable, StoreUnavailable) as exc:  # the scheduler re-sends it
            log.warning("task %d: wake-up not sent (%s); the scheduler will send it", task_id, exc)
        return task_id

    def tasks(self, status: int | None = None, limit: int = 20) -> list[TaskSummary]:
        return self.store.list_tasks(status, limit)

    def count_download(self, item_id: int, limit: int | None = None) -> bool:
        """Call when serving an item's file: False if it may not be served (not DONE: failed,
        expired, or past its download limit).  Counts the download in `download_times`; the
        download that reaches `limit` is served and the item then EXPIRED (contract.md §1)."""
        counted = self.store.count_download(item_id, limit)
        return bool(counted and counted[0])

    def cancel(self, task_id: int) -> int | None:
        """Mark a task CANCELLED (its running export is killed); return its status after."""
        return self.store.cancel_task(task_id)


def submit(
    settings: Settings | str,
    subtype: str,
    org_id: int,
    data: str | dict[str, Any] | list[Any] | None = None,
    name: str | None = None,
    **fields: Any,
) -> int:
    """One-shot `Client(settings).submit(...)`; keep a Client for many submissions."""
    with Client(settings) as client:
        return client.submit(subtype, org_id, data, name, **fields)
