"""Waiting on conditions with a deadline: the only place tests sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
    context: Callable[[], str] = lambda: "",
) -> T:
    """Return probe()'s first truthy value; fail with what was last seen, never hang."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached in {timeout}s; last={value!r}\n{context()}")
        time.sleep(interval)


def eventually(assertion: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Retry an asserting callable until it passes; re-raise its last AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return assertion()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(interval)
