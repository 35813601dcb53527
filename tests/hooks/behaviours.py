"""Test handlers: what an export does is read from its item's data, so one class covers
every behaviour the suites need.  Each run appends lifecycle markers to the file named
by data["log"] (`START item pid`, `END item`), so tests wait on markers, not on time.

data keys: do = ok | raise | bad | none | sleep | hang | ignore_term | grandchild |
segfault | exit | alloc | progress; seconds (for sleep, progress); code (for exit); reject (bool).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.model import DownloadItem, DownloadTaskMain


def mark(data: dict, line: str) -> None:
    path = data.get("log")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class Behaviour(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="Behaviour", type=10, sub_type=15, queue_key="behaviour")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        obj = json.loads(data)
        if isinstance(obj, dict) and obj.get("reject"):
            return None
        if isinstance(obj, dict) and obj.get("reject_raise"):
            raise ValueError(obj["reject_raise"])
        return obj if isinstance(obj, dict) else {"value": obj}

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        mark(data_obj, f"START {task_item.id} {os.getpid()}")
        result = self._do(task_item, data_obj)
        mark(data_obj, f"END {task_item.id}")
        return result

    def _do(self, item: DownloadItem, data: dict):
        do = data.get("do", "ok")
        if data.get("before") == "grandchild":  # leave a child process running, then do the rest
            child = subprocess.Popen(["sleep", "1000"])
            mark(data, f"GRANDCHILD {child.pid}")
        if do == "raise":
            raise RuntimeError(data.get("message", "boom") * int(data.get("repeat", 1)))
        if do == "bad":
            return "not a tuple"
        if do == "none":
            return None, None, None
        if do == "sleep":
            time.sleep(float(data.get("seconds", 1)))
        elif do == "hang":
            while True:
                time.sleep(3600)
        elif do == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(3600)
        elif do == "grandchild":
            child = subprocess.Popen(["sleep", "1000"])
            mark(data, f"GRANDCHILD {child.pid}")
            child.wait()
        elif do == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif do == "exit":
            os._exit(int(data.get("code", 7)))
        elif do == "hang_once":  # the first run hangs (its owner will be lost); later runs finish
            with open(data["log"], encoding="utf-8") as handle:
                runs = [line for line in handle if line.startswith(f"START {item.id} ")]
            if len(runs) == 1:
                while True:
                    time.sleep(3600)
        elif do == "swallow":
            try:
                while True:
                    time.sleep(3600)
            except BaseException:  # an export that swallows even the master's abort
                mark(data, f"SWALLOWED {item.id}")
        elif do == "progress":  # `steps` reports over `seconds`, with a total unless total=false
            steps, seconds = int(data.get("steps", 100)), float(data.get("seconds", 1))
            for done in range(1, steps + 1):
                self.progress(done * 10, steps * 10 if data.get("total", True) else None)
                time.sleep(seconds / steps)
        elif do == "alloc":
            self.ballast = bytearray(int(data.get("mb", 100)) * 1_000_000)
        name = data.get("file_name", f"item-{item.id}.csv")
        body = f"{item.id},{item.data}\n".encode()
        return f"file:///exports/{name}", hashlib.md5(body).hexdigest(), name


class MultiBehaviour(Behaviour):
    """Splits into data["parts"] items (default 2); data["split"] = raise | empty | hang."""

    task_info = SubTypeInfo(
        task_name="MultiBehaviour", type=11, sub_type=16, queue_key="multi", is_multi_task=True
    )

    def split_task(self, task: DownloadTaskMain) -> list:
        data = json.loads(task.data or "{}")
        mode = data.get("split")
        mark(data, f"SPLIT {task.id} {os.getpid()}")
        if mode == "raise":
            raise ValueError("cannot split 'this' task")
        if mode == "empty":
            return []
        if mode == "hang":
            while True:
                time.sleep(3600)
        items = []
        for index in range(int(data.get("parts", 2))):
            item = DownloadItem()
            item.org_id = task.org_id
            item.task_id = task.id
            item.type = self.task_info.sub_type
            part = dict(data, part=index, **data.get("part_data", {}).get(str(index), {}))
            item.data = json.dumps(part)
            items.append(item)
        return items


class CrashOnStart(Behaviour):
    """Imports fine (so preflight passes) but dies while the worker builds it."""

    task_info = SubTypeInfo(task_name="CrashOnStart", type=12, sub_type=17, queue_key="crash")

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("cannot connect to the export service")


class Notifying(Behaviour):
    """Has on_task_finished: marks `NOTICE task pid status` in the task's data["log"]; raises on
    its first data["notice_fails"] runs (counted from the markers)."""

    task_info = SubTypeInfo(task_name="Notifying", type=13, sub_type=18, queue_key="notifying")

    def on_task_finished(self, task: DownloadTaskMain) -> None:
        data = json.loads(task.data or "{}")
        mark(data, f"NOTICE {task.id} {os.getpid()} {task.status}")
        with open(data["log"], encoding="utf-8") as handle:
            runs = sum(1 for line in handle if line.startswith(f"NOTICE {task.id} "))
        if runs <= int(data.get("notice_fails", 0)):
            raise RuntimeError("the application is not answering")
