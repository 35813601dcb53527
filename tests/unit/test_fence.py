"""The fence's arithmetic, on a fake clock: when a master cut off from the database must
stop its exports, so that it has stopped before another supervisor's lease takes over."""

from __future__ import annotations

import pytest

from dlsupervisor import fence
from dlsupervisor.fence import Fence

LEASE = 4.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def test_work_is_fenced_half_a_lease_after_the_last_answered_heartbeat():
    clock, f = FakeClock(), Fence()
    started = clock.now
    f.answered(clock.advance(1.0))  # a heartbeat sent at 1001 came back
    assert not f.due(started, LEASE, clock.advance(1.99))
    assert f.due(started, LEASE, clock.advance(0.01))
    assert f.deadline(started, LEASE) == 1003.0


def test_work_started_after_the_last_heartbeat_counts_from_its_own_start():
    clock, f = FakeClock(), Fence()
    f.answered(clock.now)
    started = clock.advance(60.0)  # idle for a minute, then a claim: its lease is fresh
    assert not f.due(started, LEASE, clock.advance(1.9))
    assert f.due(started, LEASE, clock.advance(0.1))


def test_without_any_answered_heartbeat_work_counts_from_its_start():
    f = Fence()
    assert not f.due(10.0, LEASE, 11.9)
    assert f.due(10.0, LEASE, 12.0)


def test_an_older_answer_arriving_late_never_moves_the_lease_back():
    f = Fence()
    f.answered(20.0)
    f.answered(15.0)  # a slow round trip sent earlier
    assert f.last_ok == 20.0


def test_lifting_reports_how_long_the_fence_lasted_once():
    clock, f = FakeClock(), Fence()
    assert f.lift(clock.now) is None
    f.fenced(clock.now)
    f.fenced(clock.advance(3.0))  # fencing more work later keeps the first time
    assert f.lift(clock.advance(2.0)) == pytest.approx(5.0)
    assert f.lift(clock.advance(1.0)) is None


@pytest.mark.parametrize("lease", [2.0, 4.0, 60.0, 600.0])
def test_fence_stall_and_kill_together_end_before_the_lease(lease):
    """Fenced at half the lease, plus one blocked database call, plus the SIGKILL grace."""
    worst = lease / 2 + fence.db_timeout(lease, 2.0) + fence.kill_grace(lease, 5.0)
    assert worst < lease


def test_timeouts_keep_their_ceilings_for_long_leases():
    assert fence.db_timeout(60.0, 2.0) == 2.0
    assert fence.kill_grace(60.0, 5.0) == 5.0
    assert fence.db_timeout(4.0, 2.0) == 0.5
    assert fence.kill_grace(4.0, 5.0) == 1.0
