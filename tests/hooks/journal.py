"""Slow exports and splits that keep a journal: one line per start, beat and end of every
run, naming the work, the supervisor (its config file's stem) and the time, so a test can
tell from the journal alone whether two supervisors ever ran the same work at once.

Line: `EVENT WORK supervisor pid monotonic`, WORK `item-ID` or `split-ID` (time.monotonic is
one clock for the whole host).  data keys: journal (path); seconds / again: how long the
first / a later run of an item lasts; split_seconds / split_again: the same for a split;
every: seconds between beats.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.model import DownloadItem, DownloadTaskMain


def note(path: str, event: str, work: str, supervisor: str) -> None:
    line = f"{event} {work} {supervisor} {os.getpid()} {time.monotonic():.4f}\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def runs_before(path: str, work: str) -> int:
    try:
        with open(path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.startswith(f"START {work} "))
    except FileNotFoundError:
        return 0


class Journal(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="Journal", type=10, sub_type=18, queue_key="journal")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        return json.loads(data)

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        self._run(data_obj, f"item-{task_item.id}", "seconds", "again")
        name = f"item-{task_item.id}-{self._supervisor()}.csv"
        return f"file:///exports/{name}", None, name

    def _supervisor(self) -> str:
        return Path(self.config_path or "unknown").stem

    def _run(self, data: dict, work: str, first_key: str, again_key: str) -> None:
        """Beat in the journal for as long as this run of `work` should last."""
        path, supervisor = data["journal"], self._supervisor()
        first = runs_before(path, work) == 0
        seconds = float(data.get(first_key, 1) if first else data.get(again_key, 1))
        every = float(data.get("every", 0.1))
        note(path, "START", work, supervisor)
        try:
            finish = time.monotonic() + seconds
            while time.monotonic() < finish:
                time.sleep(min(every, max(0.0, finish - time.monotonic())))
                note(path, "BEAT", work, supervisor)
        except BaseException:  # the master's abort: the last sign this run was alive
            note(path, "STOP", work, supervisor)
            raise
        note(path, "END", work, supervisor)


class MultiJournal(Journal):
    """Splits (slowly, journalled) into one item of its own subtype."""

    task_info = SubTypeInfo(
        task_name="MultiJournal", type=11, sub_type=19, queue_key="multijournal", is_multi_task=True
    )

    def split_task(self, task: DownloadTaskMain) -> list:
        data = json.loads(task.data)
        self._run(data, f"split-{task.id}", "split_seconds", "split_again")
        item = DownloadItem()
        item.data = json.dumps(dict(data, seconds=data.get("item_seconds", 0.2)))
        return [item]
