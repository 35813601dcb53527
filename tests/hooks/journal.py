"""A slow export that keeps a journal: one line per start, beat and end of every run, naming
the item, the supervisor (its config file's stem) and the time, so a test can tell from the
journal alone whether two supervisors ever exported one item at once.

Line: `EVENT item supervisor pid monotonic` (time.monotonic is one clock for the whole host).
data keys: journal (path), seconds (how long the first run of an item lasts), again (how long
later runs last), every (seconds between beats).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.model import DownloadItem


def note(path: str, event: str, item_id: int, supervisor: str) -> None:
    line = f"{event} {item_id} {supervisor} {os.getpid()} {time.monotonic():.4f}\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def runs_before(path: str, item_id: int) -> int:
    try:
        with open(path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.startswith(f"START {item_id} "))
    except FileNotFoundError:
        return 0


class Journal(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="Journal", type=10, sub_type=18, queue_key="journal")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        return json.loads(data)

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        path = data_obj["journal"]
        supervisor = Path(self.config_path or "unknown").stem
        first = runs_before(path, task_item.id) == 0
        seconds = float(data_obj.get("seconds", 1) if first else data_obj.get("again", 1))
        every = float(data_obj.get("every", 0.1))
        note(path, "START", task_item.id, supervisor)
        try:
            finish = time.monotonic() + seconds
            while time.monotonic() < finish:
                time.sleep(min(every, max(0.0, finish - time.monotonic())))
                note(path, "BEAT", task_item.id, supervisor)
        except BaseException:  # the master's abort: the last sign this run was alive
            note(path, "STOP", task_item.id, supervisor)
            raise
        note(path, "END", task_item.id, supervisor)
        name = f"item-{task_item.id}-{supervisor}.csv"
        return f"file:///exports/{name}", None, name
