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


def error_kind(exc: BaseException) -> str:
    """`OperationalError 1290` or `OperationalError SQLITE_READONLY`: the class and its code."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    code = code if code is not None else getattr(exc, "sqlite_errorname", None)
    return type(exc).__name__ + (f" {code}" if code is not None else "")


class Refusals:
    """Database errors that are not outages (a privilege revoked, say): no process ends for
    one.  Each kind is logged once, by class and code only (the message may quote data);
    the caller retries after `failed`'s delay, doubling from `first` to `most`; one line
    when calls succeed again."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        first: float = 1.0,
        most: float = 5.0,
    ) -> None:
        self._log = log
        self._what = what  # "the scheduler's pass", "a worker's call"
        self._clock = clock
        self._first, self._most = first, most
        self.delay = 0.0  # the last backoff; 0 while calls succeed
        self.logged: set[str] = set()
        self.since: float | None = None

    def failed(self, exc: BaseException) -> float:
        """Note a refusal; the seconds to wait before the next try."""
        kind = error_kind(exc)
        self.delay = min(self._most, self.delay * 2) if self.delay else self._first
        if self.since is None:
            self.since = self._clock()
        if kind not in self.logged:
            self.logged.add(kind)
            self._log.error("database refused %s (%s); retrying with backoff", self._what, kind)
        else:
            self._log.debug("database refused %s again (%s); retry in %gs", self._what, kind, self.delay)
        return self.delay

    def succeeded(self) -> None:
        if self.since is not None:
            kinds = ", ".join(sorted(self.logged))
            self._log.warning(
                "recovered: %s succeeds again after %.1fs (%s)", self._what, self._clock() - self.since, kinds
            )
        self.delay, self.logged, self.since = 0.0, set(), None


def retrying(
    call: Callable[[], T],
    outage: Outage,
    *,
    give_up: Callable[[], bool] = lambda: False,
    on_wait: Callable[[], object] = lambda: None,
    max_delay: float = 2.0,
    refusals: Refusals | None = None,
) -> T:
    """Call until it succeeds; between failures sleep 50 ms doubling to `max_delay`.

    With `refusals`, an error that is not an outage is retried too, after its own
    (longer) backoff.  `give_up` is asked after each failure; when it says so the last
    error is raised (a refusal as StoreUnavailable, so callers handle one kind).
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
        except Exception as exc:  # a store call's boundary, when the caller asks for it
            if refusals is None:
                raise
            wait = refusals.failed(exc)
            if give_up():
                raise StoreUnavailable(f"database refused the call ({error_kind(exc)})") from exc
            on_wait()
            time.sleep(wait)
            continue
        outage.up()
        if refusals is not None:
            refusals.succeeded()
        return result
