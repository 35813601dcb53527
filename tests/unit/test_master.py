"""The master's loop driven in-process: a fake clock, a fake OS seam (no fork), a real
SQLite store on tmp_path.  Each scenario is one the process tests cover with real
children, run here in milliseconds."""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys

import pymysql
import pytest

from dlsupervisor import logsetup, remarks, statusfile
from dlsupervisor.child import Child, ChildState, KillReason
from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.master.database import error_kind
from dlsupervisor.master.ops import CheckResult
from dlsupervisor.model import ItemStatus
from dlsupervisor.slots import SlotState
from dlsupervisor.supervisor import Master, Phase
from tests.helpers.env import config_text
from tests.helpers.fakeops import FakeClock, FakeOps

FAST = {"min_uptime": 1, "max_backoff": 2, "kill_grace": 1, "stop_timeout": 3, "heartbeat_timeout": 60}


class Harness:
    def __init__(self, env, subtypes=None, scheduler=None, web=None, **supervisor) -> None:
        self.env = env
        self.subtypes = subtypes or {
            "behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": 1}
        }
        env.write_config(
            supervisor={**FAST, **supervisor}, subtypes=self.subtypes, scheduler=scheduler or {}, web=web
        )
        self.clock = FakeClock()
        self.ops = FakeOps()
        self.master = Master(env.settings, clock=self.clock, ops=self.ops, scheduler=web is not None)
        self.master.begin(self.clock())

    def tick(self, after: float = 0.0) -> None:
        self.clock.now += after
        self.master.tick(self.clock.now)

    def boot(self) -> None:
        """Spawn what is wanted, and let every starting child say it is idle."""
        self.tick()
        for child in self.master.pool:
            if child.state is ChildState.STARTING:
                child.slot.write(SlotState.IDLE, now=self.clock.now)
        self.tick()

    def child(self, name: str) -> Child:
        [found] = [c for c in self.master.pool if c.name == name and not c.retiring]
        return found

    def start_item(self, child: Child) -> int:
        """A task with one item, claimed by `child` as its worker would, and its slot says so."""
        _, [item_id] = self.env.new_task({"n": 1})
        claim = self.env.store.claim(item_id, remarks.owner(self.master.host, child.pid), 15)
        assert claim is not None
        child.slot.write(SlotState.ITEM, item_id, claim.attempt, now=self.clock.now)
        self.tick()
        return item_id

    def item(self, item_id: int) -> dict:
        return self.env.db.item(item_id)


@pytest.fixture
def harness(sqlite_env, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr(logsetup, "configure", lambda *args: None)  # leave pytest's logging be
    return lambda **kwargs: Harness(sqlite_env, **kwargs)


def test_a_crashed_worker_is_restarted_at_once(harness):
    h = harness()
    h.boot()
    first = h.child("behaviour#1").pid
    h.ops.exit(first, -signal.SIGSEGV)
    h.tick(5.0)  # older than min_uptime
    child = h.child("behaviour#1")
    assert h.ops.forked == [first, child.pid]
    assert (child.state, child.restarts) == (ChildState.STARTING, 1)
    written = statusfile.load(h.master.status_path)
    assert [(c.name, c.pid, c.restarts) for c in written.children] == [("behaviour#1", child.pid, 1)]


def test_a_crash_loop_backs_off_doubling_up_to_max_backoff(harness):
    h = harness()
    h.tick()
    delays = []
    for _ in range(6):
        child = h.child("behaviour#1")
        h.ops.exit(child.pid, 1)
        h.tick(0.1)  # younger than min_uptime
        if child.state is ChildState.BACKOFF:
            delay = child.next_start_at - h.clock.now
            forked = len(h.ops.forked)
            h.tick(delay - 0.01)
            assert len(h.ops.forked) == forked, "restarted before its backoff ran out"
            h.tick(0.01)
        else:
            delay = 0.0
        delays.append(round(delay, 3))
        assert child.state is ChildState.STARTING
    assert delays == [0.0, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_child_that_stays_up_past_min_uptime_resets_the_backoff(harness):
    h = harness()
    h.tick()
    for _ in range(3):
        h.ops.exit(h.child("behaviour#1").pid, 1)
        h.tick(0.1)
        h.tick(h.child("behaviour#1").next_start_at - h.clock.now)
    child = h.child("behaviour#1")
    h.ops.exit(child.pid, 1)
    h.tick(5.0)
    assert child.state is ChildState.STARTING and child.early_deaths == 0


def test_a_timeout_records_the_item_then_stops_the_tree_and_sigkills_after_kill_grace(harness):
    subtypes = {"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": 1, "timeout": 2}}
    h = harness(subtypes=subtypes)
    h.boot()
    child = h.child("behaviour#1")
    pid = child.pid
    item_id = h.start_item(child)
    h.tick(1.9)
    assert child.state is ChildState.RUNNING and h.ops.signals_to(pid) == []
    h.tick(0.1)
    row = h.item(item_id)
    assert (row["status"], row["remark"]) == (
        ItemStatus.FAILED,
        "timeout: ran longer than 2s; process tree killed",
    )
    assert (child.state, child.kill_reason) == (ChildState.KILLING, KillReason.TIMEOUT)
    assert h.ops.signals_to(pid) == [("tree", signal.SIGTERM)]
    h.tick(0.9)
    assert h.ops.signals_to(pid) == [("tree", signal.SIGTERM)]
    h.tick(0.1)
    assert h.ops.signals_to(pid) == [("tree", signal.SIGTERM), ("tree", signal.SIGKILL)]
    h.tick(0.5)
    assert h.ops.signals_to(pid) == [("tree", signal.SIGTERM), ("tree", signal.SIGKILL)]
    h.ops.exit(pid, -signal.SIGKILL)
    h.tick()
    assert h.item(item_id)["remark"].startswith(remarks.TIMEOUT)  # not overwritten as worker died
    assert h.child("behaviour#1").pid not in (None, pid)


def test_a_worker_dying_while_busy_fails_its_item_once_as_worker_died(harness, caplog):
    h = harness()
    h.boot()
    child = h.child("behaviour#1")
    item_id = h.start_item(child)
    caplog.set_level(logging.INFO, "dlsupervisor.master")
    h.ops.exit(child.pid, -signal.SIGSEGV)
    h.tick(5.0)
    h.tick(0.5)
    h.tick(0.5)
    row = h.item(item_id)
    assert (row["status"], row["remark"]) == (ItemStatus.FAILED, "worker died: signal SIGSEGV")
    recorded = [r.getMessage() for r in caplog.records if remarks.WORKER_DIED in r.getMessage()]
    assert recorded == [f"item {item_id}: failed: worker died: signal SIGSEGV"]


def test_sigterm_drains_then_requeues_the_item_past_stop_timeout(harness):
    h = harness()
    h.boot()
    child = h.child("behaviour#1")
    pid = child.pid
    item_id = h.start_item(child)
    h.master.on_signal(signal.SIGTERM, h.clock.now)
    assert h.master.phase is Phase.DRAINING
    assert h.ops.signals_to(pid) == [("pid", signal.SIGTERM)]
    h.tick(2.9)
    assert child.state is ChildState.STOPPING
    h.tick(0.1)
    assert (child.state, child.kill_reason) == (ChildState.KILLING, KillReason.STOP)
    assert h.ops.signals_to(pid)[-1] == ("tree", signal.SIGTERM)
    h.ops.exit(pid, -signal.SIGTERM)
    h.tick(0.2)
    row = h.item(item_id)
    assert row["status"] == ItemStatus.READY and row["remark"].startswith(remarks.REQUEUED)
    assert h.master.phase is Phase.EXITED and len(h.master.pool) == 0
    assert h.ops.forked == [pid]  # nothing restarted while stopping


def test_an_idle_worker_finishes_at_once_on_sigterm_and_the_master_exits(harness):
    h = harness()
    h.boot()
    pid = h.child("behaviour#1").pid
    h.master.on_signal(signal.SIGTERM, h.clock.now)
    h.ops.exit(pid, 3)
    h.tick(0.1)
    assert h.master.phase is Phase.EXITED


def test_sigttin_adds_a_worker_and_sigttou_retires_the_highest_idle_one(harness):
    h = harness()
    h.boot()
    h.master.on_signal(signal.SIGTTIN, h.clock.now)
    h.boot()
    assert sorted(c.name for c in h.master.pool) == ["behaviour#1", "behaviour#2"]
    second = h.child("behaviour#2")
    h.master.on_signal(signal.SIGTTOU, h.clock.now)
    h.tick()
    assert second.retiring and second.state is ChildState.STOPPING
    assert h.ops.signals_to(second.pid) == [("pid", signal.SIGTERM)]
    assert h.ops.signals_to(h.child("behaviour#1").pid) == []
    h.ops.exit(second.pid, 3)
    h.tick()
    assert [c.name for c in h.master.pool] == ["behaviour#1"]


def test_reload_replaces_only_the_children_whose_configuration_changed(harness):
    handler = "tests.hooks.behaviours:Behaviour"
    h = harness(subtypes={"a": {"handler": handler, "workers": 1}, "b": {"handler": handler, "workers": 1}})
    h.boot()
    a, b = h.child("a#1"), h.child("b#1")
    h.env.write_config(
        supervisor=FAST,
        subtypes={"a": {"handler": handler, "workers": 1}, "b": {"handler": handler, "timeout": 9}},
    )
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick()
    assert h.ops.handler_checks == 1
    assert h.ops.signals_to(a.pid) == []
    assert b.retiring and h.ops.signals_to(b.pid) == [("pid", signal.SIGTERM)]
    assert h.child("b#1") is not b and h.child("b#1").state is ChildState.STARTING
    assert h.master.settings.subtype("b").timeout == 9


WEB = {"listen": "127.0.0.1:8480", "secret": "s"}


def test_a_web_section_adds_a_supervised_web_child_restarted_and_reloaded_like_any(harness):
    h = harness(web=WEB)
    h.boot()
    web = h.child("web")
    assert (web.role, web.subtype, web.state) == ("web", None, ChildState.RUNNING)
    first = web.pid
    h.ops.exit(first, -signal.SIGKILL)
    h.tick(5.0)
    again = h.child("web")
    assert again.pid != first and (again.state, again.restarts) == (ChildState.STARTING, 1)
    written = statusfile.load(h.master.status_path)
    assert {c.name: c.role for c in written.children}["web"] == "web"
    h.boot()
    h.env.write_config(supervisor=FAST, subtypes=h.subtypes, web={**WEB, "max_downloads": 3})
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick()
    assert again.retiring and h.ops.signals_to(again.pid) == [("pid", signal.SIGTERM)]
    assert h.child("web") is not again and h.child("web").state is ChildState.STARTING
    assert not h.child("behaviour#1").retiring  # its links did not change
    h.env.write_config(supervisor=FAST, subtypes=h.subtypes)
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick()
    assert all(c.retiring or c.role != "web" for c in h.master.pool)


def test_a_reload_whose_handlers_do_not_import_changes_nothing(harness):
    handler = "tests.hooks.behaviours:Behaviour"
    h = harness()
    h.boot()
    before = h.master.settings
    h.env.write_config(supervisor=FAST, subtypes={"behaviour": {"handler": handler, "workers": 3}})
    h.ops.handler_problem = "behaviour: cannot import tests.hooks.nope"
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick()
    assert h.master.settings is before and len(h.master.pool) == 1


def test_the_loop_keeps_supervising_while_a_reload_checks_its_handlers(harness):
    subtypes = {"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": 1, "timeout": 2}}
    h = harness(subtypes=subtypes)
    h.boot()
    child = h.child("behaviour#1")
    item_id = h.start_item(child)
    h.ops.hold_checks = True
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick(2.0)
    assert h.master.reloading is not None  # still checking ...
    assert h.item(item_id)["remark"].startswith(remarks.TIMEOUT)  # ... and the timeout was enforced
    assert child.state is ChildState.KILLING
    h.master.on_signal(signal.SIGHUP, h.clock.now)  # a second SIGHUP waits for the first check
    assert h.ops.handler_checks == 1
    h.ops.checks[0].result = CheckResult(None)
    h.tick(0.1)
    assert h.ops.handler_checks == 2  # the file is checked again for the second SIGHUP
    h.ops.checks[1].result = CheckResult(None)
    h.tick(0.1)
    assert h.master.reloading is None


def test_stopping_drops_a_reload_still_checking_its_handlers(harness):
    h = harness()
    h.boot()
    h.ops.hold_checks = True
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.master.on_signal(signal.SIGTERM, h.clock.now)
    assert h.master.reloading is None and h.ops.checks[0].closed


@pytest.mark.parametrize("moved", ["[database]", "[redis]"])
def test_a_reload_that_moves_the_database_or_redis_is_refused_whole(harness, tmp_path, caplog, moved):
    h = harness()
    h.boot()
    before, pid = h.master.settings, h.child("behaviour#1").pid
    db_url = f"sqlite://{tmp_path}/other.db" if moved == "[database]" else h.env.db_url
    redis_url = "redis://127.0.0.1:6379/0" if moved == "[redis]" else None
    handler = {"handler": "tests.hooks.behaviours:Behaviour", "workers": 3}
    text = config_text(
        db_url, redis_url, "x:", h.env.run_dir, supervisor=FAST, subtypes={"behaviour": handler}
    )
    h.env.config_path.write_text(text)
    caplog.set_level(logging.INFO, "dlsupervisor.master")
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick()
    assert h.master.settings is before and h.ops.handler_checks == 0
    assert [c.pid for c in h.master.pool] == [pid] and h.ops.signals_to(pid) == []
    refused = [r.getMessage() for r in caplog.records if "reload" in r.getMessage()]
    assert refused == [f"reload refused, configuration unchanged: {moved} changed; restart to apply it"]


def test_heartbeats_follow_a_reloaded_lease(harness):
    h = harness()
    h.boot()
    item_id = h.start_item(h.child("behaviour#1"))
    assert h.master.next_heartbeat == h.clock.now + 5.0
    h.env.write_config(supervisor=FAST, subtypes=h.subtypes, scheduler={"poll_interval": 0.05, "lease": 2})
    h.master.on_signal(signal.SIGHUP, h.clock.now)
    h.tick(5.0)  # the reload applies, the due heartbeat goes out
    assert h.master.settings.scheduler.lease == 2
    assert h.master.next_heartbeat == h.clock.now + 0.5
    assert h.item(item_id)["status"] == ItemStatus.PROCESSING


class Blackholed:
    """A store whose every call finds the database unreachable."""

    def __getattr__(self, name: str):
        def unreachable(*args, **kwargs):
            raise StoreUnavailable(f"{name}: timed out")

        return unreachable


def test_an_export_the_database_stopped_renewing_is_fenced_at_half_the_lease(harness, caplog):
    h = harness(scheduler={"lease": 4})  # a heartbeat a second; fenced 2s after the last answered
    h.boot()
    child = h.child("behaviour#1")
    pid = child.pid
    item_id = h.start_item(child)  # its first heartbeat is answered now
    answered = h.clock.now
    store, h.master.db.store = h.master.db.store, Blackholed()
    caplog.set_level(logging.INFO, "dlsupervisor.master")
    while h.clock.now < answered + 1.9:
        assert h.master.next_wait(h.clock.now) <= answered + 2.0 - h.clock.now + 1e-9
        h.tick(0.1)
        assert child.state is ChildState.RUNNING and h.ops.signals_to(pid) == []
    h.tick(0.1)
    assert (child.state, child.kill_reason) == (ChildState.KILLING, KillReason.DATABASE_UNREACHABLE)
    assert h.ops.signals_to(pid) == [("tree", signal.SIGTERM)]
    fenced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fence:")]
    assert len(fenced) == 1 and f"item {item_id}" in fenced[0], fenced
    h.tick(1.0)  # the shortened grace: min(kill_grace, lease/4)
    assert h.ops.signals_to(pid)[-1] == ("tree", signal.SIGKILL)
    h.ops.exit(pid, -signal.SIGKILL)
    h.tick(0.1)
    assert h.item(item_id)["status"] == ItemStatus.PROCESSING  # its requeue waits for the database
    assert len(h.master.db.pending) == 1
    h.master.db.store = store  # the database answers again
    h.tick(1.0)
    row = h.item(item_id)
    assert row["status"] == ItemStatus.READY, row
    assert row["remark"].startswith(f"{remarks.REQUEUED} database unreachable"), row
    assert not h.master.db.pending and h.master.db.fence.fenced_at is None
    lifted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fence: lifted")]
    assert len(lifted) == 1, lifted
    assert h.child("behaviour#1").pid not in (None, pid)  # restarted: the master works on


def test_a_refused_call_is_named_by_its_error_class_and_code(tmp_path):
    conn = sqlite3.connect(tmp_path / "ro.db")
    conn.execute("CREATE TABLE t (a)")
    conn.execute("PRAGMA query_only = 1")
    with pytest.raises(sqlite3.OperationalError) as refused:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    # sqlite3 names its errors' codes from Python 3.11 on; before, the class alone names them.
    named = " SQLITE_READONLY" if sys.version_info >= (3, 11) else ""
    assert error_kind(refused.value) == f"OperationalError{named}"
    assert error_kind(pymysql.err.OperationalError(1290, "read-only")) == "OperationalError 1290"
