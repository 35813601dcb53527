"""The database as the queue, for configurations without Redis.

Workers poll the store for READY work of their subtype every POLL_INTERVAL;
claims are the same conditional updates as with Redis, so several pollers
racing for one item run it once.  Registrations live in the store too
(registry.DatabaseRegistry).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from dlsupervisor.queue.messages import Place, Popped, item_message, split_message
from dlsupervisor.registry import Registration
from dlsupervisor.store import PollingStore

POLL_INTERVAL = 0.05
CANDIDATES = 8  # read a few: items, then split jobs
FIRST = 2  # pick among the first two, so two idle pollers do not always race for one item


class PollingQueue:
    def __init__(self, store: PollingStore, *, lease: float, poll_interval: float = POLL_INTERVAL):
        self._store = store
        self._lease = lease
        self._poll = poll_interval

    def push(self, queue_key: str, messages: Sequence[str], places: Sequence[Place] | None = None) -> int:
        return 0  # pollers find READY work in the database

    def pop(self, route: Registration, timeout: float) -> Popped | None:
        deadline = time.monotonic() + timeout
        while True:
            work = self._work(route)
            if work:  # the store's order is the fair one: stray from it by one place at most
                return Popped(random.choice(work[:FIRST]))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self._poll, remaining))

    def _work(self, route: Registration) -> list[str]:
        """Messages for what the store holds READY for this subtype: items, then splits."""
        work = [
            item_message(i) for i in self._store.ready_items(route.sub_type, CANDIDATES, route.max_per_org)
        ]
        if route.multi and len(work) < CANDIDATES:
            tasks = self._store.splittable_tasks((route.sub_type,), self._lease, CANDIDATES - len(work))
            work += [split_message(task_id) for task_id, _ in tasks]
        return work

    def give_back(self, queue_key: str, popped: Popped) -> None:
        pass  # a poll takes nothing away: the work is still READY in the database

    def nudge(self) -> None:
        pass  # pollers look in the database themselves: no scheduler pass to bring forward

    def await_nudge(self, timeout: float) -> bool:
        time.sleep(max(0.0, timeout))
        return False

    def ping(self) -> None:
        self._store.ping()

    def close(self) -> None:
        pass
