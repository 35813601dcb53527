"""A claim whose answer a partition held back past half the lease may belong to work
another supervisor has taken over meanwhile: the worker renews and verifies it before it
runs anything, so no item or split runs twice at once (contract.md §4).  One worker loop
at a time against the real backends; the answer's delay is a store that holds it back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from dlsupervisor.model import ItemStatus, TaskStatus
from tests.process.test_daemon import marker_lines

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

LEASE = 0.4


class HeldBack:
    """The worker's store, with the answers to its claims delayed past half the lease;
    `meanwhile` runs while an answer is in flight (the database already applied the claim)."""

    def __init__(self, store: Any, meanwhile: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._meanwhile = meanwhile
        self.held = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _late(self, answer: Any) -> Any:
        if self.held == 0:  # only the first answer is late; renewals come back in time
            self.held += 1
            time.sleep(LEASE / 2 + 0.05)  # the delay under test, not a wait for something
            self._meanwhile()
        return answer

    def claim(self, *args: Any) -> Any:
        return self._late(self._store.claim(*args))

    def claim_split(self, *args: Any) -> Any:
        return self._late(self._store.claim_split(*args))


def test_a_late_claim_taken_over_meanwhile_runs_nothing(env, tmp_path):
    env.write_config(scheduler={"lease": LEASE})
    markers = tmp_path / "markers"
    _, (item_id,) = env.new_task({"do": "ok", "log": str(markers)}, status=1)
    late, rival = env.worker(), env.worker()

    def taken_over() -> None:  # no heartbeat for the lease: requeued, and run by another worker
        env.db.age("download_item", item_id, 10)
        assert env.scheduler().recover_orphans() == 1
        assert rival.run_item(item_id)

    late.store = HeldBack(late.store, taken_over)
    assert late.run_item(item_id) is False
    assert len(marker_lines(markers, "START")) == 1  # the rival's run only
    item = env.db.item(item_id)
    assert item["status"] == ItemStatus.DONE and item["remark"] is None, item


def test_a_late_claim_still_held_is_renewed_and_runs(env, tmp_path):
    env.write_config(scheduler={"lease": LEASE})
    markers = tmp_path / "markers"
    _, (item_id,) = env.new_task({"do": "ok", "log": str(markers)}, status=1)
    late = env.worker()
    late.store = HeldBack(late.store)
    assert late.run_item(item_id) is True
    assert len(marker_lines(markers, "START")) == 1
    assert env.db.item(item_id)["status"] == ItemStatus.DONE


def test_a_late_split_claim_taken_over_meanwhile_splits_nothing(env, tmp_path):
    env.write_config(scheduler={"lease": LEASE})
    markers = tmp_path / "markers"
    task_id, _ = env.new_task({"parts": 2, "log": str(markers)}, sub_type=16, items=0)
    late, rival = env.worker("multi"), env.worker("multi")

    def taken_over() -> None:  # the split claim's heartbeat went stale: another worker splits
        env.db.age("download_task_main", task_id, 10)
        assert rival.run_split(task_id)

    late.store = HeldBack(late.store, taken_over)
    assert late.run_split(task_id) is False
    assert len(marker_lines(markers, "SPLIT")) == 1  # the rival's split only
    assert env.db.task(task_id)["status"] == TaskStatus.PROCESSING
    assert len(env.db.items_of(task_id)) == 2
