"""Retrying calls to the database or Redis through an outage, logging once per outage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from dlsupervisor.errors import QueueUnavailable, StoreUnavailable

T = TypeVar("T")
UNAVAILABLE = (StoreUnavailable, QueueUnavailable)


class Outage:
    """Tracks one backend's availability: a line when it goes away, one when it is back."""

    def __init__(self, log: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self.since: float | None = None

    def down(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = self._clock()
            self._log.warning("outage: %s; retrying with backoff", exc)

    def up(self) -> None:
        if self.since is not None:
            self._log.warning("recovered: after %.1fs", self._clock() - self.since)
            self.since = None


def retrying(
    call: Callable[[], T],
    outage: Outage,
    *,
    give_up: Callable[[], bool] = lambda: False,
    on_wait: Callable[[], object] = lambda: None,
    max_delay: float = 2.0,
) -> T:
    """Call until it succeeds; between failures sleep 50 ms doubling to `max_delay`.

    `give_up` is asked after each failure; when it says so the last error is raised.
    """
    delay = 0.05
    while True:
        try:
            result = call()
        except UNAVAILABLE as exc:
            outage.down(exc)
            if give_up():
                raise
            on_wait()  # e.g. a heartbeat: waiting out an outage is not hanging
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        outage.up()
        return result
