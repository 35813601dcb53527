"""Progress, child → slot → master → database (contract.md §9), with the master's fake clock:
an export reporting every few milliseconds costs the database at most one write a second;
and a notice being delivered is timed out like an export."""

from __future__ import annotations

import signal
import zipfile
from pathlib import Path

import pytest

from dlsupervisor import logsetup, statusfile
from dlsupervisor.child import ChildState, KillReason
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.progress import task_text, text
from dlsupervisor.slots import Slot, SlotState
from dlsupervisor.store import Progress
from dlsupervisor.task import DownloadTaskBase, SubTypeInfo
from dlsupervisor.toolkit.output import Output
from tests.helpers import progress
from tests.unit.test_master import Harness


@pytest.fixture
def harness(sqlite_env, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr(logsetup, "configure", lambda *args: None)
    return lambda **kwargs: Harness(sqlite_env, **kwargs)


def test_a_notice_delivery_is_timed_out_like_an_export_and_records_nothing(harness):
    """A hook past the subtype's timeout is killed; its notice's claim runs out and it is
    retried (notices.py), so the master has nothing to write (an item with the task's id
    is left alone)."""
    h = harness(subtypes={"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "timeout": 2}})
    h.boot()
    child = h.child("behaviour#1")
    task_id, [item_id] = h.env.new_task({"n": 1})
    child.slot.write(SlotState.NOTICE, item_id, now=h.clock.now)  # a notice of "task" item_id
    h.tick()
    h.tick(2.0)
    assert (child.state, child.kill_reason) == (ChildState.KILLING, KillReason.TIMEOUT)
    assert h.ops.signals_to(child.pid) == [("tree", signal.SIGTERM)]
    assert h.item(item_id)["status"] == ItemStatus.READY and h.master.db.pending == []


def test_an_export_reporting_often_is_written_at_most_once_a_second(harness):
    h = harness()
    h.boot()
    child = h.child("behaviour#1")
    item_id = h.start_item(child)
    progress.count_writes(h.env.db)
    for step in range(1, 101):  # 10 s of reports every 0.1 s, the master ticking each time
        child.slot.progress(step * 10, 1000)
        h.tick(0.1)
    assert 9 <= progress.writes(h.env.db) <= 11  # one per second of fake time, not 100
    assert progress.row(h.env.db, item_id)["done"] >= 900  # the latest report, at most a second old
    [row] = [c for c in statusfile.load(h.master.status_path).children if c.name == "behaviour#1"]
    assert (row.item, row.progress_done, row.progress_total) == (item_id, 1000, 1000)


def test_unchanged_progress_is_not_written_again_and_a_finished_item_never(harness):
    h = harness()
    h.boot()
    child = h.child("behaviour#1")
    item_id = h.start_item(child)
    progress.count_writes(h.env.db)
    child.slot.progress(5)
    for _ in range(30):
        h.tick(0.1)
    assert progress.writes(h.env.db) == 1
    assert (progress.row(h.env.db, item_id)["done"], progress.row(h.env.db, item_id)["total"]) == (5, None)
    child.slot.write(SlotState.IDLE, now=h.clock.now)  # the item ended
    for _ in range(30):
        h.tick(0.1)
    assert progress.writes(h.env.db) == 1


def test_a_handlers_progress_goes_to_its_slot_and_is_checked():
    class Export(DownloadTaskBase):
        task_info = SubTypeInfo("E", 1, 2, "q")

    handler, slot = Export(), Slot()
    handler.progress(3)  # no worker bound: nothing happens
    handler.bind_progress(slot.progress)
    slot.write(SlotState.ITEM, 9, 1)
    handler.progress(40, 80)
    assert slot.read().progress == (40, 80)
    with pytest.raises(ValueError):
        handler.progress(-1)
    slot.write(SlotState.ITEM, 10, 1)  # the next item starts with no progress
    assert slot.read().progress is None


def test_progress_reads_as_percent_or_rows_and_only_while_active_or_done():
    assert (text(450, 1000), text(1200, None), text(5, 0), text(12, 10)) == (
        "45%",
        "1,200 rows",
        "100%",
        "100%",
    )
    assert task_text(TaskStatus.PROCESSING, Progress(1, 4)) == "25%"
    assert task_text(TaskStatus.DONE, Progress(3, 4)) == "100%"  # complete, whatever was last reported
    assert task_text(TaskStatus.FAILED, Progress(3, 4)) == "-"
    assert task_text(TaskStatus.CANCELLED, Progress(3, None)) == "-"
    assert task_text(TaskStatus.PROCESSING, None) == "-"


@pytest.mark.parametrize(("suffix", "max_rows"), [(".csv", None), (".csv", 700), (".xlsx", 1000)])
def test_open_output_reports_every_thousand_rows_and_on_close_whatever_its_parts(tmp_path, suffix, max_rows):
    """Reports ride the parts' roll-over check: with parts of 700 or exactly 1000 rows (a report
    and a roll-over on the same row) every row still lands once, in order."""
    reports, staged = [], []

    def stage(path, name, md5):
        staged.append(name)
        if suffix == ".csv":
            written.extend(csv_rows(path))
        return "url", md5, name

    written: list[int] = []

    with Output(
        str(tmp_path),
        f"x{suffix}",
        stage,
        columns=["n"],  # a header in every part
        total=2500,
        max_rows=max_rows,
        progress=lambda done, total: reports.append((done, total)),
    ) as out:
        for i in range(2500):
            out.write_row([i])
    assert reports == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    assert out.rows == 2500 and staged == [f"x{suffix}" if max_rows is None else "x.zip"]
    assert suffix != ".csv" or written == list(range(2500))


def csv_rows(path: str) -> list[int]:
    """The data rows of a CSV, or of each CSV part in a zip (in part order), headers aside."""
    if not zipfile.is_zipfile(path):
        return [int(line) for line in Path(path).read_text(encoding="utf-8-sig").split()[1:]]
    with zipfile.ZipFile(path) as bundle:
        names = sorted(bundle.namelist(), key=lambda n: (len(n), n))
        return [int(line) for n in names for line in bundle.read(n).decode("utf-8-sig").split()[1:]]


def test_open_output_without_a_total_leaves_progress_to_the_export(tmp_path):
    reports = []
    with Output(
        str(tmp_path), "x.csv", lambda *a: ("u", a[2], a[1]), progress=lambda *r: reports.append(r)
    ) as out:
        out.write_rows([i] for i in range(2500))
    assert reports == []
