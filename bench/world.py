"""One benchmark run's world: its id, scratch directory, databases and Redis keys, all removed at the end.

Databases are `dlsv_bench_<run>_<label>`, one per system so no scheduler ever sees
another system's rows; every Redis key carries the run id (`dlb:<run>:...`, and the
RQ names `bench-<run>...`), and nothing is ever flushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import redis
from pymysql.cursors import DictCursor

from bench import procs
from dlsupervisor.store.mysql import schema_statements

MYSQL_URL = os.environ.get("DLSV_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("DLSV_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DB_PREFIX = "dlsv_bench_"

# Every bench row belongs to this subtype (bench.exports.BenchExport).
TYPE, SUB_TYPE = 90, 901


def connect(url: str, **kwargs: Any) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/") or None,
        charset="utf8mb4",
        autocommit=True,
        cursorclass=DictCursor,
        **kwargs,
    )


class Events:
    """What exports and peer hooks report (`start`, `ready`), through one Redis list.

    Each event is JSON with a `kind`, a `pid` and `t` (time.time() when it happened).
    """

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.seen: list[dict[str, Any]] = []

    def clear(self) -> None:
        self.client.delete(self.key)
        self.seen = []

    def poll(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The first matching event read so far or waiting in the list, without blocking."""
        while (raw := self.client.lpop(self.key)) is not None:
            self.seen.append(json.loads(raw))
        for index, event in enumerate(self.seen):
            if match(event):
                return self.seen.pop(index)
        return None

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The first event (already read or arriving within `timeout`) that matches."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.seen):
                if match(event):
                    return self.seen.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise procs.BenchError(f"no {what} within {timeout:g}s")
            popped = self.client.blpop([self.key], timeout=max(0.01, min(remaining, 1.0)))
            if popped is not None:
                self.seen.append(json.loads(popped[1]))


class World:
    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"dlsv-bench-{self.run_id}-"))
        self.prefix = f"dlb:{self.run_id}:"
        self.redis_url = REDIS_URL
        self.redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        self.events = Events(self.redis, f"{self.prefix}events")
        self.startups: dict[str, list[float]] = {}  # system -> seconds from launch to ready
        self._databases: list[str] = []
        self._stoppers: list[Callable[[], None]] = []

    # -- databases ---------------------------------------------------------------------

    def database(self, label: str) -> str:
        """A new database holding the schema; returns its url."""
        name = f"{DB_PREFIX}{self.run_id}_{label}"
        with contextlib.closing(connect(MYSQL_URL)) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        self._databases.append(name)
        url = f"{MYSQL_URL.rstrip('/')}/{name}"
        with contextlib.closing(connect(url)) as conn, conn.cursor() as cursor:
            for statement in schema_statements():
                cursor.execute(statement)
        return url

    def on_close(self, stopper: Callable[[], None]) -> None:
        """Run `stopper` at close unless it ran before (systems register their stop)."""
        self._stoppers.append(stopper)

    # -- teardown ----------------------------------------------------------------------

    def close(self, keep_files: bool = False) -> None:
        for stopper in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                stopper()
        self._drop_databases()
        self._drop_keys()
        if not keep_files:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _drop_databases(self) -> None:
        with contextlib.closing(connect(MYSQL_URL)) as conn, conn.cursor() as cursor:
            for name in self._databases:
                assert name.startswith(DB_PREFIX), name
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def _drop_keys(self) -> None:
        """Every key of this run: ours by prefix, RQ's by the run id in its names."""
        for pattern in (f"{self.prefix}*", f"rq:*{self.run_id}*"):
            keys = list(self.redis.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                self.redis.delete(*keys[start : start + 500])
        self.redis.delete("rq:clean_groups")  # RQ's maintenance lock (it expires anyway)
        for shared in ("rq:workers", "rq:queues"):  # RQ's global sets: only our members go
            ours = [m for m in self.redis.smembers(shared) if self.run_id in m]
            if ours:
                self.redis.srem(shared, *ours)


def insert_items(
    db_url: str, count: int, data: dict[str, Any], *, task_status: int = 1, org_id: int = 1, orgs: int = 1
) -> list[int]:
    """`count` single-item tasks as `submit()` makes them (task PROCESSING, item READY).

    With task_status=0 they are what an application inserting rows itself makes: the
    scheduler dispatches them.  With `orgs` > 1 they belong to orgs org_id .. org_id +
    orgs - 1 in blocks (the first count/orgs rows to the first org, and so on), so the
    fair order is as far from id order as it gets.  Returns the item ids, in order.
    """
    with contextlib.closing(connect(db_url)) as conn:
        return insert_batch(conn, count, data, task_status=task_status, org_id=org_id, orgs=orgs)


def insert_batch(
    conn: pymysql.connections.Connection,
    count: int,
    data: dict[str, Any],
    *,
    task_status: int = 1,
    org_id: int = 1,
    orgs: int = 1,
) -> list[int]:
    """insert_items on an open connection, tasks and items committed together (one transaction,
    as an application inserting a batch does: no pass ever sees a task without its item)."""
    for attempt in range(5):  # a deadlock with the scheduler's UPDATEs is retried, as an application would
        try:
            return _insert_batch(conn, count, data, task_status, org_id, orgs)
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1213 or attempt == 4:
                raise
    raise AssertionError("unreachable")


def _insert_batch(
    conn: pymysql.connections.Connection,
    count: int,
    data: dict[str, Any],
    task_status: int,
    org_id: int,
    orgs: int,
) -> list[int]:
    text = json.dumps(data)
    tag = f"bench-{uuid.uuid4().hex[:12]}"
    count, orgs = int(count), max(int(orgs), 1)
    with conn.cursor() as cursor:
        # READ COMMITTED: the INSERT ... SELECT reads the new tasks without locking them.
        cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cursor.execute("BEGIN")
        cursor.execute(
            "INSERT INTO download_task_main (org_id, task_name, platform, type, sub_type, status, data) "
            f"SELECT %s + (seq - 1) * {orgs} DIV {count}, %s, 1, %s, %s, %s, %s FROM seq_1_to_{count}",
            (int(org_id), tag, TYPE, SUB_TYPE, task_status, text),
        )
        cursor.execute(
            "INSERT INTO download_item (task_id, org_id, type, status, data) "
            "SELECT id, org_id, sub_type, 0, data FROM download_task_main WHERE task_name = %s ORDER BY id",
            (tag,),
        )
        cursor.execute(
            "SELECT i.id FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
            "WHERE t.task_name = %s ORDER BY i.id",
            (tag,),
        )
        ids = [row["id"] for row in cursor.fetchall()]
        cursor.execute("COMMIT")
    return ids


def insert_task_sql(
    conn: pymysql.connections.Connection, data: dict[str, Any], *, org_id: int = 1, task_status: int = 0
) -> int:
    """One task (READY by default) and its READY item, as an application inserting rows
    does; the item id."""
    text = json.dumps(data)
    with conn.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(
            "INSERT INTO download_task_main (org_id, task_name, platform, type, sub_type, status, data) "
            "VALUES (%s, 'bench', 1, %s, %s, %s, %s)",
            (org_id, TYPE, SUB_TYPE, task_status, text),
        )
        task_id = cursor.lastrowid
        cursor.execute(
            "INSERT INTO download_item (task_id, org_id, type, status, data) VALUES (%s, %s, %s, 0, %s)",
            (task_id, org_id, SUB_TYPE, text),
        )
        item_id = cursor.lastrowid
        cursor.execute("COMMIT")
    return item_id


def item_state(conn: pymysql.connections.Connection, item_id: int) -> dict[str, Any]:
    """status, remark, and `at`: when the row last changed (the database's clock, epoch seconds)."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT status, remark, UNIX_TIMESTAMP(last_updated_time) AS at FROM download_item WHERE id = %s",
            (item_id,),
        )
        row = cursor.fetchone()
    row["at"] = float(row["at"])
    return row


def wait_done(db_url: str, item_ids: list[int], timeout: float) -> dict[str, Any]:
    """Wait until every item is DONE (or `timeout`); the rate between first and last DONE."""
    low, high = min(item_ids), max(item_ids)
    deadline = time.monotonic() + timeout
    with contextlib.closing(connect(db_url)) as conn, conn.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT COUNT(*) AS n, UNIX_TIMESTAMP(MIN(last_updated_time)) AS first, "
                "UNIX_TIMESTAMP(MAX(last_updated_time)) AS last FROM download_item "
                "WHERE status = 2 AND id BETWEEN %s AND %s",
                (low, high),
            )
            row = cursor.fetchone()
            if row["n"] >= len(item_ids) or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
    done = int(row["n"])
    span = float(row["last"] - row["first"]) if done > 1 else 0.0
    return {
        "done": done,
        "complete": done >= len(item_ids),
        "seconds": span,
        "items_per_s": (done - 1) / span if span > 0 else 0.0,
        "last_done_at": float(row["last"]) if done else None,  # the database's clock, epoch s
    }


def download_rows(db_url: str, item_ids: list[int]) -> dict[int, dict[str, Any]]:
    """id -> status, url, download_times and the stored file's key, for the web benchmark."""
    marks = ", ".join(["%s"] * len(item_ids))
    with contextlib.closing(connect(db_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT i.id, i.status, i.url, COALESCE(i.download_times, 0) AS download_times, f.storage_key "
            f"FROM download_item i LEFT JOIN dlsupervisor_file f ON f.item_id = i.id WHERE i.id IN ({marks})",
            tuple(item_ids),
        )
        return {row["id"]: row for row in cursor.fetchall()}
