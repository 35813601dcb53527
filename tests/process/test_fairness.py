"""Fairness across orgs and pinned tasks, in the real daemon (contract.md §9).

Order is read from the behaviours' journal (`START item pid` lines, appended as each
export starts), never from wall-clock timing: a light org's item must start within a
few places of when it was submitted, not after the heavy org's backlog.
"""

from __future__ import annotations

import os
import signal
import time

from dlsupervisor.model import ItemStatus
from tests.helpers.wait import wait_until
from tests.process.test_daemon import BEHAVIOUR, config, marker_lines

HEAVY, BACKLOG, LIGHT_ORGS = 1, 200, 10


def started(log):
    """Item ids in the order their exports started."""
    return [int(line[1]) for line in marker_lines(log, "START")]


def wait_started(log, at_least, daemon):
    return wait_until(
        lambda: len(started(log)) >= at_least and started(log),
        timeout=60,
        what=f"{at_least} exports started",
        context=daemon.context,
    )


def test_light_orgs_start_within_a_few_places_not_after_a_heavy_backlog(env, daemon, tmp_path):
    log = tmp_path / "journal"
    d = daemon(**config(workers=2)).start()
    data = {"do": "sleep", "seconds": 0.05, "log": str(log)}
    for _ in range(BACKLOG):
        env.new_task(data, org_id=HEAVY)
    wait_started(log, 3, d)
    light = {}  # item -> how many exports had started when it was submitted
    for n in range(LIGHT_ORGS):
        light[env.new_task(data, org_id=100 + n)[1][0]] = len(started(log))
    order = wait_until(
        lambda: all(i in started(log) for i in light) and started(log),
        timeout=60,
        what="every light org's export started",
        context=d.context,
    )
    # FIFO starts them after the backlog (place >= 200).  Round-robin: each within one round
    # (every light org's item, and the heavy org's turn between them) and the exports in flight.
    late = {i: (order.index(i), at) for i, at in light.items() if order.index(i) > at + 2 * LIGHT_ORGS + 4}
    assert not late and max(map(order.index, light)) < BACKLOG // 2, late


def test_a_pinned_task_overtakes_its_orgs_backlog(env, daemon, tmp_path):
    log = tmp_path / "journal"
    d = daemon(**config(workers=2)).start()
    data = {"do": "sleep", "seconds": 0.02, "log": str(log)}
    for _ in range(BACKLOG // 2):
        env.new_task(data, org_id=HEAVY)
    wait_started(log, 3, d)
    _, (pinned,) = env.new_task(data, org_id=HEAVY, top=1)
    before = len(started(log))  # counted once it is in: exports go on starting while it is inserted
    order = wait_until(
        lambda: pinned in started(log) and started(log),
        timeout=60,
        what="the pinned task's export started",
        context=d.context,
    )
    assert order.index(pinned) <= before + 8, (order.index(pinned), before)


# -- max_per_org -----------------------------------------------------------------------------


def capped(workers, cap=2):
    return config(
        workers=workers,
        behaviour={"handler": BEHAVIOUR, "workers": workers, "timeout": 10, "max_per_org": cap},
    )


def running_by_org(env):
    rows = env.db.execute(
        "SELECT org_id, COUNT(*) AS n FROM download_item WHERE status = %s GROUP BY org_id",
        (int(ItemStatus.PROCESSING),),
    )
    return {int(r["org_id"]): int(r["n"]) for r in rows}


def sample_until_done(env, item_ids, on_sample=None, timeout=90.0):
    """{org: running} every 50 ms until every item is terminal (the cap's observation)."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(running_by_org(env))
        if on_sample:
            on_sample(samples)
        marks = ", ".join(["%s"] * len(item_ids))
        active = env.db.execute(
            f"SELECT COUNT(*) AS n FROM download_item WHERE id IN ({marks}) AND status IN (%s, %s)",
            (*item_ids, int(ItemStatus.READY), int(ItemStatus.PROCESSING)),
        )
        if not int(active[0]["n"]):
            return samples
        time.sleep(0.05)
    raise AssertionError(f"items still active after {timeout}s; last samples {samples[-5:]}")


def test_max_per_org_is_never_exceeded_and_the_other_orgs_work_runs_meanwhile(env, daemon, tmp_path):
    d = daemon(**capped(workers=4)).start()
    d.wait_child("behaviour#4", state="idle")
    data = {"do": "sleep", "seconds": 0.5}
    items = [env.new_task(data, org_id=org)[1][0] for _ in range(10) for org in (1, 2)]
    samples = sample_until_done(env, items)
    assert max(max(s.values(), default=0) for s in samples) == 2, samples
    full = [s for s in samples if sum(s.values()) == 4]
    assert len(full) >= len(samples) // 3, samples  # both orgs at their cap: all 4 workers busy
    assert all(env.db.item(i)["status"] == ItemStatus.DONE for i in items)


def test_the_cap_holds_across_two_supervisors_and_a_killed_workers_count_is_released(env, daemon, tmp_path):
    first = daemon("a", **capped(workers=2)).start()
    second = daemon("b", **capped(workers=2)).start()
    for d in (first, second):
        d.wait_child("behaviour#2", state="idle")
    _, (long,) = env.new_task({"do": "sleep", "seconds": 60}, org_id=1)
    items = [long] + [env.new_task({"do": "sleep", "seconds": 0.4}, org_id=1)[1][0] for _ in range(11)]
    killed = {}

    def kill_the_long_export(samples):
        """Once the long export has held a slot for a while (while the others wait for one)."""
        busy = [c["pid"] for d in (first, second) for c in d.children().values() if c.get("item") == long]
        if not killed and busy and len(samples) >= 20:
            killed.update(pid=busy[0], at=len(samples))
            os.kill(busy[0], signal.SIGKILL)

    samples = sample_until_done(env, items, kill_the_long_export)
    assert killed, "the long export never seen running"
    assert max(s.get(1, 0) for s in samples) == 2, samples
    assert any(s.get(1, 0) == 2 for s in samples[killed["at"] + 1 :]), samples  # its slot came back
    assert env.db.item(long)["remark"] == "worker died: signal SIGKILL"
    assert all(env.db.item(i)["status"] == ItemStatus.DONE for i in items[1:])
