"""Wake-ups for workers (DESIGN invariant 1: never the only record of anything).

A message names work that the database already holds: `i:ITEM_ID` (export an
item) or `s:TASK_ID` (split a multi-item task).  Losing one costs latency,
never work: the scheduler sends READY work again.  Registrations tell the
scheduler which subtypes have live workers and where to send their work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dlsupervisor.config import Settings
from dlsupervisor.store import Registration, Store

ITEM = "i"
SPLIT = "s"


def item_message(item_id: int) -> str:
    return f"{ITEM}:{item_id}"


def split_message(task_id: int) -> str:
    return f"{SPLIT}:{task_id}"


def parse_message(message: str) -> tuple[str, int] | None:
    """(kind, id), or None for anything that is not one of ours."""
    kind, _, number = message.partition(":")
    if kind not in (ITEM, SPLIT) or not number.isdigit():
        return None
    return kind, int(number)


class Queue(Protocol):
    def push(self, queue_key: str, messages: Sequence[str]) -> int: ...
    def pop(self, route: Registration, timeout: float) -> str | None: ...
    def register(self, reg: Registration) -> None: ...
    def registrations(self, max_age: float) -> list[Registration]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def open_queue(settings: Settings, store: Store) -> Queue:
    """Redis when configured, else the database itself, polled."""
    if settings.redis is not None:
        from dlsupervisor.queue.redis import RedisQueue

        return RedisQueue(settings.redis)
    from dlsupervisor.queue.polling import PollingQueue

    return PollingQueue(store, lease=settings.scheduler.lease)
