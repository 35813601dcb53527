"""Wake-ups for workers (architecture.md, invariant 1: never the only record of anything).

A message names work that the database already holds: `i:ITEM_ID` (export an
item) or `s:TASK_ID` (split a multi-item task).  Losing one costs latency,
never work: the scheduler sends READY work again.  Which subtypes have live
workers, and which queue their work goes to, is registry.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dlsupervisor.config import Settings
from dlsupervisor.queue.messages import (
    ITEM,
    SPLIT,
    Place,
    Popped,
    item_message,
    parse_message,
    split_message,
)
from dlsupervisor.registry import Registration
from dlsupervisor.store import PollingStore

__all__ = [
    "ITEM",
    "SPLIT",
    "Place",
    "Popped",
    "Queue",
    "item_message",
    "open_queue",
    "parse_message",
    "split_message",
]


class Queue(Protocol):
    def push(self, queue_key: str, messages: Sequence[str], places: Sequence[Place] | None = None) -> int: ...
    def pop(self, route: Registration, timeout: float) -> Popped | None: ...  # timeout <= 0: no wait
    def give_back(self, queue_key: str, popped: Popped) -> None: ...
    # a worker that ran out of queued work asks the scheduler for a pass now
    def nudge(self) -> None: ...
    def await_nudge(self, timeout: float) -> bool: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def open_queue(settings: Settings, store: PollingStore) -> Queue:
    """Redis when configured, else the database itself, polled."""
    if settings.redis is not None:
        from dlsupervisor.queue.redis import RedisQueue

        return RedisQueue(settings.redis)
    from dlsupervisor.queue.polling import PollingQueue

    return PollingQueue(store, lease=settings.scheduler.lease)
