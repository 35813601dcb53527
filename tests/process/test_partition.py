"""A supervisor cut off from the database by a partition (packets dropped, not refused)
stops its own exports within half the lease, before another supervisor takes them over
after the lease: no item is ever exported by two supervisors at once (contract.md §4).

Supervisor A reaches the one MariaDB database through a proxy the test blackholes;
B reaches it directly.  No Redis: with the database as the queue and GET_LOCK as the
election, everything A knows of the world goes through the proxy, so the blackhole cuts
A off entirely, and the leader's lock is freed by the server when A falls silent.  (With a
Redis that A still reached, A's scheduler would keep the leadership while cut off from
the database, and nobody would recover A's items until the partition healed.)
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from dlsupervisor.client import Client
from dlsupervisor.model import ItemStatus, TaskStatus
from tests.conftest import environment
from tests.helpers.daemon import Daemon, gone
from tests.helpers.proxy import Proxy
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

LEASE = 4.0
JOURNAL = "tests.hooks.journal:Journal"
MULTI_JOURNAL = "tests.hooks.journal:MultiJournal"


@dataclass
class Run:
    """One run of an export or a split: from its START to the last line it wrote."""

    work: str  # item-ID or split-TASK_ID
    supervisor: str
    pid: int
    start: float
    last: float
    end: str  # the last event: END (finished), STOP (aborted), BEAT (killed or still running)


def runs(journal: Path) -> dict[str, list[Run]]:
    """Every item's and split's runs, in the order they started."""
    found: dict[tuple[str, int], Run] = {}
    if not journal.exists():
        return {}
    for line in journal.read_text().splitlines():
        event, work, supervisor, pid, at = line.split()
        key = (work, int(pid))
        if event == "START":
            found[key] = Run(work, supervisor, int(pid), float(at), float(at), event)
        else:
            found[key].last, found[key].end = float(at), event
    by_work: dict[str, list[Run]] = defaultdict(list)
    for run in sorted(found.values(), key=lambda r: r.start):
        by_work[run.work].append(run)
    return by_work


def overlaps(journal: Path) -> list[str]:
    """Pairs of runs of one item (or split) by two supervisors alive at the same time."""
    found = []
    for work, work_runs in runs(journal).items():
        for earlier, later in zip(work_runs, work_runs[1:], strict=False):
            if earlier.supervisor != later.supervisor and earlier.last >= later.start:
                found.append(
                    f"{work}: {earlier.supervisor} (pid {earlier.pid}) still running "
                    f"{earlier.last - later.start:.2f}s after {later.supervisor} (pid {later.pid}) "
                    f"started it (last {earlier.end})"
                )
    return found


def settings() -> dict:
    return {
        "subtypes": {
            "journal": {"handler": JOURNAL, "workers": 2, "timeout": 60},
            "multijournal": {"handler": MULTI_JOURNAL, "workers": 1, "timeout": 60},
        },
        "supervisor": {"stop_timeout": 2, "kill_grace": 0.5, "min_uptime": 0.5, "max_backoff": 2},
        "scheduler": {"poll_interval": 0.1, "lease": LEASE},
    }


def through(proxy: Proxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'root'}@127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def world(tmp_path, driver):
    """A database-as-queue environment, a proxy to its MariaDB, and daemons torn down by pid."""
    with environment("mysql-polling", tmp_path) as env, Proxy(("127.0.0.1", 3306)) as proxy:
        env.driver = driver
        env.write_config()
        started: list[Daemon] = []
        yield env, proxy, started
        proxy.heal()  # so a stopping daemon can record what it held
        leaked = {d.sid: left for d in started if (left := d.close())}
        assert not leaked, f"processes left behind after stop: {leaked}"


def submit(env, journal: Path, subtype: str = "journal", **data) -> int:
    """The new item's id (the task's, for a multi-item subtype)."""
    with Client(env.settings) as client:
        task_id = client.submit(subtype, 7, {"journal": str(journal), **data})
    return env.db.items_of(task_id)[0]["id"] if subtype == "journal" else task_id


def test_a_partitioned_supervisor_stops_its_exports_before_another_takes_them_over(world, tmp_path):
    env, proxy, started = world
    journal = tmp_path / "journal"
    env.write_config(**settings())  # the application's view: it knows the journal subtype
    a = Daemon(env, "a", db_url=through(proxy, env.db_url), **settings())
    b = Daemon(env, "b", **settings())
    started += [a, b]
    a.start()
    a.wait_child("journal#2", state="idle")
    # Long first runs (A's, which must be stopped), short second runs (B's).
    taken = [submit(env, journal, seconds=20, again=4) for _ in range(2)]
    split = submit(env, journal, "multijournal", split_seconds=20, split_again=1)
    works = [f"item-{i}" for i in taken] + [f"split-{split}"]

    def started_on(supervisor: str, works: list[str]) -> bool:
        seen = runs(journal)
        return all(any(r.supervisor == supervisor for r in seen.get(w, [])) for w in works)

    wait_until(lambda: started_on("a", works), what="A running both items and the split", context=a.context)
    b.start()
    b.wait_child("journal#2", state="idle")
    master_a = a.proc.pid

    cut_at = time.monotonic()
    proxy.blackhole()
    wait_until(
        lambda: started_on("b", works),
        timeout=LEASE + 15,
        what="B taking the items and the split over after the lease",
        context=lambda: f"{b.context()}\n--- journal ---\n{journal.read_text()}",
    )
    for item_id in taken:  # B runs them to the end while A is still cut off
        b.wait_item(item_id, status=ItemStatus.DONE, timeout=LEASE + 10)
    b.wait_task(split, status=TaskStatus.DONE, timeout=LEASE + 10)
    proxy.heal()

    # The invariant: the journal shows no item or split run by two supervisors at once.
    assert overlaps(journal) == [], "\n".join(overlaps(journal)) + f"\n--- A ---\n{a.log_tail(60)}"
    for work in works:
        first, second = runs(journal)[work]
        assert (first.supervisor, second.supervisor) == ("a", "b")
        assert first.end != "END" and second.end == "END", (first, second)
        assert first.last - cut_at <= LEASE / 2 + 1.0, f"A stopped {work} late: {first}"
    for item_id in taken:
        row = env.db.item(item_id)
        assert row["file_name"] == f"item-{item_id}-b.csv" and row["remark"] is None, row
    (split_item,) = env.db.items_of(split)  # B's split alone was committed
    assert split_item["status"] == ItemStatus.DONE, split_item

    # A said why it stopped them and that the database came back; its requeues, written
    # once the database answered, matched nothing: B had taken the work over.
    settled = [f"item {i}: requeued: database unreachable (attempt 1 of 3) (already settled)" for i in taken]
    expected = ["fence: lifted", *settled, f"task {split}: split released (already settled)"]
    wait_until(
        lambda: all(line in a.log_tail(100_000) for line in expected),
        what=f"A logging {expected}",
        context=a.context,
    )
    log_a = a.log_tail(100_000)
    assert "fence: database unreachable" in log_a, log_a
    assert log_a.count("(database unreachable)") == 3, log_a  # the kill reason of each

    # A recovered in place: the same master, live workers, and new work runs on A again.
    assert a.proc.poll() is None and a.status()["master"]["pid"] == master_a
    b.stop()
    a.wait_child("journal#1", state="idle", timeout=LEASE + 10)
    a.wait_child("journal#2", state="idle", timeout=LEASE + 10)
    fresh = [submit(env, journal, seconds=0.3) for _ in range(2)]
    for item_id in fresh:
        a.wait_item(item_id, status=ItemStatus.DONE, timeout=15)
        assert env.db.item(item_id)["file_name"] == f"item-{item_id}-a.csv"
    assert not any(gone(c["pid"]) for c in a.children().values())
    assert a.status()["master"]["phase"] == "running"
    statuses = env.db.execute("SELECT status, COUNT(*) AS n FROM download_item GROUP BY status")
    assert statuses == [{"status": ItemStatus.DONE, "n": 5}], statuses  # each item DONE, once
