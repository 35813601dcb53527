"""dlsupervisor: `python -m dlsupervisor start` on a generated INI, MariaDB + Redis.

Everything is at its default (log_level INFO to a file, poll_interval 0.5 s,
stop_timeout 30 s, min_uptime 1 s) except what a measurement passes: the
worker count, `timeout`, `kill_grace`, and extra sections (`[storage]`, `[web]`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

from bench import procs
from bench.systems import record_startup
from bench.world import World
from dlsupervisor import Client, queue
from dlsupervisor.config import RedisSettings
from dlsupervisor.queue.redis import RedisQueue

SUBTYPE = "bench"
HANDLER = "bench.exports:BenchExport"
WORKER_TITLE = f"dlsupervisor: worker {SUBTYPE}#"


class Dlsv:
    name = "dlsupervisor"
    finds_rows = True  # its scheduler dispatches rows an application inserted

    def __init__(
        self,
        world: World,
        *,
        label: str = "dlsv",
        workers: int = 4,
        timeout: float = 0,
        sections: dict[str, dict[str, Any]] | None = None,
        **supervisor: Any,
    ) -> None:
        """`sections`: more INI sections, e.g. `storage` and `web` (bench/web.py)."""
        self.world = world
        self.sections = sections or {}
        self.label = label
        self.workers = workers
        self.timeout = timeout
        self.supervisor = supervisor  # extra [supervisor] keys, e.g. kill_grace
        self.db_url = world.database(label)
        self.ini = world.tmp / f"{label}.ini"
        self.log = world.tmp / f"{label}.log"
        self.launched: procs.Launched | None = None
        self._queue: RedisQueue | None = None
        self._write_ini()

    def _write_ini(self) -> None:
        supervisor = {
            "run_dir": self.world.tmp / f"{self.label}-run",
            "log_file": self.log,
            **self.supervisor,
        }
        sections = {
            "supervisor": supervisor,
            "database": {"url": self.db_url},
            "redis": {"url": self.world.redis_url, "key_prefix": f"{self.world.prefix}{self.label}:"},
            f"subtype:{SUBTYPE}": {"handler": HANDLER, "workers": self.workers, "timeout": self.timeout},
            **self.sections,
        }
        lines = []
        for section, values in sections.items():
            lines += [f"[{section}]", *(f"{key} = {value}" for key, value in values.items()), ""]
        self.ini.write_text("\n".join(lines))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> float:
        """Launch, and wait for READY=1 (sent once every child has booted)."""
        notify_path = str(self.world.tmp / f"{self.label}.notify")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(notify_path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(notify_path)
            sock.settimeout(0.5)
            self.launched = procs.launch(
                self.name,
                ["-m", "dlsupervisor", "start", "-c", str(self.ini)],
                self.log,
                {"NOTIFY_SOCKET": notify_path},
            )
            self.world.on_close(self.stop)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    if "READY=1" in sock.recv(4096).decode().splitlines():
                        ready = time.time() - self.launched.started
                        return record_startup(self.world, self.name, ready)
                if self.launched.proc.poll() is not None:
                    break
        raise procs.BenchError(f"dlsupervisor did not report READY=1; see {self.log}")

    def stop(self) -> None:
        if self.launched is not None:
            procs.stop(self.launched, timeout=40)
            self.launched = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    # -- work --------------------------------------------------------------------------

    def enqueue(self, item_ids: list[int], data: dict[str, Any]) -> None:
        """Wake-ups for rows already in the table, as submit() sends them (1,000 a call)."""
        if self._queue is None:
            settings = RedisSettings(self.world.redis_url, f"{self.world.prefix}{self.label}:")
            self._queue = RedisQueue(settings)
        messages = [queue.item_message(i) for i in item_ids]
        for start in range(0, len(messages), 1000):
            self._queue.push("bench", messages[start : start + 1000])

    def enqueue_ranked(self, item_ids: list[int]) -> None:
        """Wake-ups at each item's place in its org's line, from the store's ranked query
        (what submit() and the scheduler push), 1,000 a call."""
        with self.client() as client:
            for start in range(0, len(item_ids), 1000):
                refs = client.store.ranked_items(item_ids[start : start + 1000])
                messages = [queue.item_message(ref.item_id) for ref in refs]
                client.queue.push("bench", messages, [(ref.top, ref.pos) for ref in refs])

    def client(self) -> Client:
        return Client(str(self.ini))

    # -- processes ---------------------------------------------------------------------

    def workers_now(self) -> dict[int, str]:
        """pid -> title of every worker."""
        found = {}
        for pid in procs.children(self.launched.pid):
            title = procs.title(pid)
            if title.startswith(WORKER_TITLE):
                found[pid] = title
        return found

    def export_pids(self) -> set[int]:
        return set(self.workers_now())

    def replaced(self, before: set[int]) -> float | None:
        """Now, if a worker not in `before` shows `idle` in its title (its slot went IDLE)."""
        for pid, title in self.workers_now().items():
            if pid not in before and title.endswith(" idle"):
                return time.time()
        return None

    def processes(self) -> dict[str, list[int]]:
        roles: dict[str, list[int]] = {"master": [self.launched.pid], "scheduler": [], "workers": []}
        for pid in procs.children(self.launched.pid):
            title = procs.title(pid)
            if title.startswith("dlsupervisor: scheduler"):
                roles["scheduler"].append(pid)
            elif title.startswith(WORKER_TITLE):
                roles["workers"].append(pid)
        return roles
