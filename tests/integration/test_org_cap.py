"""max_per_org in the claim itself: claims racing from many connections (as from many
supervisors) never let more than the cap of one org's items run (contract.md §9)."""

from __future__ import annotations

import threading

import pytest

from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.store import Outcome, open_store

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

CAP, RACERS, ROUNDS = 2, 8, 4


def processing(env, org_id):
    rows = env.db.execute(
        "SELECT COUNT(*) AS n FROM download_item WHERE org_id = %s AND status = %s",
        (org_id, int(ItemStatus.PROCESSING)),
    )
    return int(rows[0]["n"])


def race(env, item_ids):
    """Each racer, on its own connection, claims one of item_ids at once; the claims won."""
    stores = [open_store(env.settings.database) for _ in item_ids]
    start = threading.Barrier(len(item_ids))
    won: list[tuple[int, str]] = []

    def claim(store, item_id):
        start.wait()
        try:
            got = store.claim(item_id, f"racer:{item_id}", 15, CAP)
        except StoreUnavailable:  # a deadlock victim: rolled back, claimed nothing
            return
        if got is not None:
            won.append((item_id, got.token))

    threads = [threading.Thread(target=claim, args=pair) for pair in zip(stores, item_ids, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.close()
    return won


def test_racing_claims_of_one_org_never_exceed_its_cap(env):
    items = [env.new_task("{}", org_id=1, status=TaskStatus.PROCESSING)[1][0] for _ in range(RACERS * ROUNDS)]
    for round_ in range(ROUNDS):
        won = race(env, items[round_ * RACERS : (round_ + 1) * RACERS])
        assert 1 <= len(won) <= CAP and processing(env, 1) <= CAP, (round_, won)
        for item_id, token in won:  # they finish: their places are free for the next round
            env.store.record(item_id, token, Outcome(ItemStatus.DONE, url="u", md5="m", file_name="f"), 60)
        assert processing(env, 1) == 0


def test_a_full_org_holds_back_its_own_items_only(env):
    first, second, third = (env.new_task("{}", org_id=1, status=TaskStatus.PROCESSING)[1][0] for _ in "abc")
    _, (other,) = env.new_task("{}", org_id=2, status=TaskStatus.PROCESSING)
    assert env.store.claim(first, "w:1", 15, CAP) and env.store.claim(second, "w:2", 15, CAP)
    assert env.store.claim(third, "w:3", 15, CAP) is None  # held back: it stays READY
    assert env.db.item(third)["status"] == ItemStatus.READY and env.db.item(third)["remark"] is None
    assert env.store.claim(other, "w:4", 15, CAP) is not None
    assert env.store.ready_items(15, 8, CAP) == []  # a poller sees nothing org 1 may start now
    env.store.requeue(first, env.db.item(first)["remark"], ItemStatus.READY, "requeued: x", None)
    assert env.store.ready_items(15, 8, CAP) in ([first], [third])  # a place came back
