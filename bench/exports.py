"""The export every system runs, and dlsupervisor's handler around it.

What an export does comes from its data (the item's `data` column for
dlsupervisor, the message's arguments for the peers):

    mode = noop        return at once (throughput)
           stamp       report `start`, return (pickup latency)
           sleep       report `start`, sleep `seconds` (crash recovery: killed meanwhile)
           grandchild  start `sleep 1000`, report `start` with its pid, wait for it (timeouts)
           ignore_term the same, ignoring SIGTERM (and so does the `sleep`)
           file        store a file of `size` bytes named `name` through the toolkit (web)

`start` is reported to the run's Redis list (`events`, at `redis`) with the time
taken on entry, so reporting costs nothing in what is measured, and the data's `tag`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import redis

from bench import dbwork
from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.model import DownloadItem

_client: redis.Redis | None = None
_client_pid = 0


def report(data: dict[str, Any], event: dict[str, Any]) -> None:
    """RPUSH one event to the run's list (a forked process opens its own connection)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(data["redis"])
        _client_pid = os.getpid()
    _client.rpush(data["events"], json.dumps(event))


def run_export(item_id: int, data: dict[str, Any]) -> None:
    started = time.time()
    mode = data.get("mode", "noop")
    if mode == "noop":
        return
    event = {
        "kind": "start",
        "item": item_id,
        "tag": data.get("tag"),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "t": started,
    }
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the `sleep` below
    if mode in ("grandchild", "ignore_term"):
        child = subprocess.Popen(["sleep", "1000"])
        report(data, {**event, "child": child.pid})
        child.wait()
        return
    report(data, event)
    if mode == "sleep":
        time.sleep(float(data.get("seconds", 60)))


class BenchExport(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="BenchExport", type=90, sub_type=901, queue_key="bench")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        return json.loads(data)

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        if data_obj.get("mode") == "file":  # dlsupervisor only: the file the web bench serves
            size = int(data_obj["size"])
            return self.store_file((b"0123456789abcdef" * (size // 16 + 1))[:size], data_obj["name"])
        run_export(task_item.id, data_obj)
        url, md5 = dbwork.RESULT
        return url, md5, f"bench-{task_item.id}.txt"
