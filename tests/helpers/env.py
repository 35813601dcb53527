"""One test's world: a fresh database, a Redis key prefix, a config file, and loops to drive."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlsupervisor import config, handlers
from dlsupervisor.election import RedisElection, StoreElection
from dlsupervisor.queue import open_queue
from dlsupervisor.scheduler import Scheduler
from dlsupervisor.store import open_store
from dlsupervisor.worker import Worker
from tests.helpers.db import Db

SUBTYPES = {
    "behaviour": "tests.hooks.behaviours:Behaviour",
    "multi": "tests.hooks.behaviours:MultiBehaviour",
}
TOOLKIT_SUBTYPES = {"toolkit": {"handler": "tests.hooks.toolkit_hooks:ToolkitExport", "workers": 1}}


def config_text(
    db_url: str,
    redis_url: str | None,
    prefix: str,
    run_dir: Path,
    *,
    subtypes: dict[str, dict[str, Any]] | None = None,
    supervisor: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    redis_keys: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
    web: dict[str, Any] | None = None,
    driver: str = "",
) -> str:
    """`driver`: [database] driver (MySQL only; empty: not written, so `auto`)."""
    sections = {
        "supervisor": {"run_dir": run_dir, "log_level": "DEBUG", **(supervisor or {})},
        "database": {"url": db_url, **({"driver": driver} if driver and db_url.startswith("mysql") else {})},
        "scheduler": {"poll_interval": 0.05, **(scheduler or {})},
    }
    if storage:
        sections["storage"] = storage
    if web is not None:
        sections["web"] = web
    if redis_url:
        sections["redis"] = {"url": redis_url, "key_prefix": prefix, **(redis_keys or {})}
    if subtypes is None:
        subtypes = {name: {"handler": ref, "workers": 1} for name, ref in SUBTYPES.items()}
    for name, values in subtypes.items():
        sections[f"subtype:{name}"] = values
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass
class Env:
    backend: str
    db_url: str
    redis_url: str | None
    prefix: str
    tmp: Path
    redis_keys: dict[str, Any] = field(default_factory=dict)  # [redis] sentinels, service_name
    driver: str = "pymysql"  # [database] driver on MySQL: the tests say which (tests/conftest.py)
    db: Db = field(init=False)

    def __post_init__(self) -> None:
        self.run_dir = self.tmp / "run"
        self.run_dir.mkdir(exist_ok=True)
        self.config_path = self.tmp / "supervisor.ini"
        self.write_config()
        self.store = open_store(self.settings.database)
        self.store.initdb()
        self.queue = open_queue(self.settings, self.store)
        self.db = Db(self.db_url)
        self._closers: list[Any] = [self.store, self.queue, self.db]

    # -- configuration -----------------------------------------------------------------

    def write_config(self, **kwargs: Any) -> Path:
        self.config_path.write_text(
            config_text(
                self.db_url,
                self.redis_url,
                self.prefix,
                self.run_dir,
                redis_keys=self.redis_keys,
                driver=self.driver,
                **kwargs,
            )
        )
        self.settings = config.load(str(self.config_path))
        return self.config_path

    # -- loops driven in-process -------------------------------------------------------

    def worker(self, name: str = "behaviour", **kwargs: Any) -> Worker:
        sub = self.settings.subtype(name)
        cls, info = handlers.load(self.settings, sub)
        store = open_store(self.settings.database)
        work_queue = open_queue(self.settings, store)
        self._closers += [store, work_queue]
        return Worker(
            self.settings,
            sub,
            handlers.registration(sub, info),
            handlers.construct(cls, info, self.settings),
            store,
            work_queue,
            host=socket.gethostname(),
            **kwargs,
        )

    def scheduler(self) -> Scheduler:
        store = open_store(self.settings.database)
        work_queue = open_queue(self.settings, store)
        self._closers += [store, work_queue]
        if self.settings.redis is not None:
            election = RedisElection(work_queue.client, f"{self.prefix}scheduler", 10)
        else:
            election = StoreElection(store, f"dlsv:{self.db_url[-16:]}", 10)
        return Scheduler(self.settings, store, work_queue, election)

    # -- the business application's side -----------------------------------------------

    def new_task(
        self,
        data: Any = None,
        *,
        sub_type: int = 15,
        items: int = 1,
        item_data: Any = "same",
        org_id: int = 7,
        status: int = 0,
        **cols: Any,
    ) -> tuple[int, list[int]]:
        """Insert a task and its items as a business application does, by SQL."""
        text = data if data is None or isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        task_id = self.db.insert(
            "download_task_main",
            org_id=org_id,
            task_name="t",
            platform=1,
            type=10,
            sub_type=sub_type,
            status=status,
            data=text,
            **cols,
        )
        if item_data == "same":
            item_data = text
        elif item_data is not None and not isinstance(item_data, str):
            item_data = json.dumps(item_data, ensure_ascii=False)
        item_ids = [
            self.db.insert(
                "download_item", task_id=task_id, org_id=org_id, type=sub_type, status=0, data=item_data
            )
            for _ in range(items)
        ]
        return task_id, item_ids

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer.close()
            except Exception:
                pass
