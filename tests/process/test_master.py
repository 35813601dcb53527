"""The master against real children: what it logs and signals as they end (issue 11).

These run on SQLite only: what they pin is the master's handling of its processes,
the same on every backend (test_daemon.py runs the behaviours on all three).
"""

from __future__ import annotations

import re
import signal

import pytest

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"
FAST = {"stop_timeout": 2, "kill_grace": 0.5, "min_uptime": 0.5, "max_backoff": 2}
SQLITE_ONLY = pytest.mark.parametrize("env", ["sqlite"], indirect=True)


def config(workers=2, timeout=5, supervisor=None, **subtype):
    return {
        "subtypes": {"behaviour": {"handler": BEHAVIOUR, "workers": workers, "timeout": timeout, **subtype}},
        "supervisor": {**FAST, **(supervisor or {})},
        "scheduler": {"poll_interval": 0.05},
    }


@SQLITE_ONLY
def test_a_normal_stop_logs_each_child_as_stopped(env, daemon):
    d = daemon(**config(workers=2)).start()
    d.wait_child("behaviour#2", state="idle")
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    exits = re.findall(r"exited: (\S+) pid \d+ \((.*)\)$", d.log_tail(10_000), re.MULTILINE)
    assert sorted(exits) == [
        ("behaviour#1", "stopped; expected"),
        ("behaviour#2", "stopped; expected"),
        ("scheduler", "stopped; expected"),
    ], d.log_tail()
