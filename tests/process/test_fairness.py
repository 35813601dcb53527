"""Fairness across orgs and pinned tasks, in the real daemon (contract.md §9).

Order is read from the behaviours' journal (`START item pid` lines, appended as each
export starts), never from wall-clock timing: a light org's item must start within a
few places of when it was submitted, not after the heavy org's backlog.
"""

from __future__ import annotations

from tests.helpers.wait import wait_until
from tests.process.test_daemon import config, marker_lines

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
    data = {"do": "sleep", "seconds": 0.02, "log": str(log)}
    for _ in range(BACKLOG):
        env.new_task(data, org_id=HEAVY)
    before = len(wait_started(log, 3, d))
    light = [env.new_task(data, org_id=100 + n)[1][0] for n in range(LIGHT_ORGS)]
    order = wait_started(log, before + BACKLOG // 2, d)
    places = sorted(order.index(item) for item in light if item in order)
    assert len(places) == LIGHT_ORGS, (places, before)
    # FIFO would start them after the backlog (place >= 200); round-robin within a few places.
    assert places[-1] < len(started(log)) and places[-1] <= before + 2 * LIGHT_ORGS + 10, (places, before)


def test_a_pinned_task_overtakes_its_orgs_backlog(env, daemon, tmp_path):
    log = tmp_path / "journal"
    d = daemon(**config(workers=2)).start()
    data = {"do": "sleep", "seconds": 0.02, "log": str(log)}
    for _ in range(BACKLOG // 2):
        env.new_task(data, org_id=HEAVY)
    before = len(wait_started(log, 3, d))
    _, (pinned,) = env.new_task(data, org_id=HEAVY, top=1)
    order = wait_until(
        lambda: pinned in started(log) and started(log),
        timeout=60,
        what="the pinned task's export started",
        context=d.context,
    )
    assert order.index(pinned) <= before + 8, (order.index(pinned), before)
