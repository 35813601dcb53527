"""The scheduler against a database that stops answering or refuses statements (issue 11),
on a fake clock: a fake store, election and registry, so each pass is a few calls.

A leader the database has not answered for half the lease lets its leadership go (with
Redis it would otherwise keep renewing it, and no other supervisor's scheduler would
recover its items until the network healed); a refused statement backs the passes off;
a stop whose release finds a broken connection is still a stop."""

from __future__ import annotations

import logging

import pymysql
import pytest

from dlsupervisor.errors import EX_RECYCLE, StopNow, StoreUnavailable
from dlsupervisor.scheduler import Scheduler
from dlsupervisor.spawn import run_guarded
from tests.helpers.fakeops import FakeClock

LEASE = 4.0


class FakeElection:
    def __init__(self) -> None:
        self.holds = 0
        self.releases = 0
        self.release_fails = False

    def hold(self) -> bool:
        self.holds += 1
        return True

    def release(self) -> None:
        self.releases += 1
        if self.release_fails:
            raise StoreUnavailable("database: (2014, 'Command Out of Sync')")


class FakeStore:
    """Idle when up: a pass is one `has_work`; `failure` is what every call raises."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.failure is not None:
            raise self.failure

    def has_work(self, file_ttl: int, files: bool = False) -> bool:
        self._call("has_work")
        return False

    def files_table(self) -> bool:  # no stored files to sweep
        self._call("files_table")
        return False

    def ping(self) -> None:
        self._call("ping")


class NoRegistry:
    def registrations(self, max_age: float) -> list:
        return []


@pytest.fixture
def scheduler(sqlite_env):
    sqlite_env.write_config(scheduler={"lease": LEASE})
    clock = FakeClock()
    built = Scheduler(
        sqlite_env.settings, FakeStore(), object(), FakeElection(), registry=NoRegistry(), clock=clock
    )
    return built, clock


def test_a_leader_the_database_stopped_answering_for_half_the_lease_lets_go(scheduler, caplog):
    s, clock = scheduler
    assert s.safe_tick() is not None and s.leading
    s.store.failure = StoreUnavailable("database: timed out")
    while clock.now < 1000.0 + LEASE / 2 - 0.5:
        clock.now += 0.5
        assert s.safe_tick() is None
        assert s.leading and s.election.releases == 0, "let go before half the lease"
    holds = s.election.holds
    clock.now += 0.5  # half the lease since the database last answered
    s.safe_tick()
    assert not s.leading and s.election.releases == 1
    assert "leadership released until it answers" in caplog.text
    for _ in range(10):  # while the database is away it does not stand again
        clock.now += 0.5
        assert s.safe_tick() is None
    assert s.election.holds == holds + 1 and s.store.calls[-1] == "ping"
    s.store.failure = None  # the database answers: it stands, and schedules
    clock.now += 0.5
    assert s.safe_tick() is not None and s.leading and s.election.holds == holds + 2


def test_a_refused_statement_backs_the_passes_off_and_is_logged_once(scheduler, caplog):
    s, clock = scheduler
    caplog.set_level(logging.DEBUG, "dlsupervisor.scheduler")
    s.store.failure = pymysql.err.OperationalError(1142, "UPDATE command denied to user 'secret-data'")
    tries = []
    for _ in range(40):
        clock.now += 0.25
        calls = len(s.store.calls)
        assert s.safe_tick() is None
        if len(s.store.calls) > calls:
            tries.append(clock.now - 1000.0)
    assert tries == [0.25, 1.25, 3.25, 7.25]  # 1 s doubling, up to 5 s
    refused = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert refused == ["database refused the scheduler's pass (OperationalError 1142); retrying with backoff"]
    assert "secret-data" not in caplog.text  # its class and code, never the message
    assert s.leading  # the database answered: no reason to let go
    s.store.failure = None
    clock.now += 5.0
    assert s.safe_tick() is not None
    assert "recovered: the scheduler's pass succeeds again" in caplog.text


def test_a_stop_whose_release_finds_the_connection_broken_is_still_a_stop(scheduler):
    s, _ = scheduler
    s.safe_tick()
    s.election.release_fails = True  # the SIGTERM landed mid-call: the connection is out of sync
    s.store.failure = StopNow()
    status = run_guarded(lambda: s.run(lambda: False), logging.getLogger("test"))
    assert status == EX_RECYCLE and s.election.releases == 1
