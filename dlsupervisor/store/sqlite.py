"""The SQLite store (stdlib sqlite3), the embedded default: one database file, WAL mode.

Same semantics as the MySQL store, statement for statement.  The connection is
in autocommit mode; a single statement is its own transaction and waits on the
busy timeout for the write lock.  Anything that reads and then writes, or
writes more than once, runs inside BEGIN IMMEDIATE: a deferred transaction
that has read cannot wait for the write lock (SQLite answers SQLITE_BUSY at
once), an immediate one takes it up front and waits like any writer.

SQLite's changes() counts the rows an UPDATE matched, even when it set them to
the values they had, which is what MySQL's CLIENT.FOUND_ROWS gives: a retried
claim with the same token is idempotent on both.

Statements that pick rows by id write `+status`: the unary plus keeps the planner
on the primary key.  Without statistics (nobody runs ANALYZE on an embedded
database) it would otherwise walk the status index, which for DONE rows is the
whole history (DESIGN invariant 7).

Timestamps are text 'YYYY-MM-DD HH:MM:SS.fff' in UTC (they compare as text and
use the indexes); loaded rows carry them as naive datetimes, as PyMySQL's do.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dlsupervisor import remarks
from dlsupervisor.config import DatabaseSettings
from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.model import DownloadItem, DownloadTaskMain
from dlsupervisor.store import (
    ITEM_INSERT_COLUMNS,
    TASK_INSERT_COLUMNS,
    Claim,
    ItemRef,
    Outcome,
    Registration,
    Tally,
    TaskSummary,
    case_args,
    claim_of,
    item_refs,
    registrations_of,
    split_closures,
    summaries,
    tallies,
)

log = logging.getLogger(__name__)

# Primary result codes after which the call may be retried: another writer held the
# lock past the busy timeout, or the file is unreachable, unwritable or full for now.
_RETRYABLE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
_RETRYABLE_MESSAGES = ("database is locked", "disk i/o error", "unable to open", "database or disk is full")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # trimmed to milliseconds by to_text()
TIMESTAMP_COLUMNS = frozenset({"created_time", "last_updated_time", "expire_time", "seen_time"})

# SQL fragments for the current time and a time relative to it (the offset is a
# parameter: `_offset(seconds)`).  Constants, never built from values.
NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
NOW_PLUS = "strftime('%Y-%m-%d %H:%M:%f', 'now', ?)"


def schema_script() -> str:
    """schema_sqlite.sql (it holds triggers, so it runs as a script, not split on ';')."""
    return resources.files("dlsupervisor.store").joinpath("schema_sqlite.sql").read_text(encoding="utf-8")


def to_text(value: datetime) -> str:
    """A datetime as stored: UTC, milliseconds.  A naive datetime is taken to be UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.strftime(TIME_FORMAT)[:-3]


def to_datetime(text: str) -> datetime | str:
    """A stored timestamp as a naive UTC datetime; text that is not one is returned as is."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _offset(seconds: float) -> str:
    """The strftime modifier for `now + seconds`."""
    return f"{seconds:+.3f} seconds"


def _marks(values: Sequence[Any]) -> str:
    """`?, ?, ?` for an IN list of len(values)."""
    return ", ".join(["?"] * len(values))


def _params(args: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(to_text(a) if isinstance(a, datetime) else a for a in args)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for column, value in zip(cursor.description, row, strict=True):
        name = column[0]
        if name in TIMESTAMP_COLUMNS and isinstance(value, str):
            value = to_datetime(value)
        out[name] = value
    return out


def _retryable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _RETRYABLE_CODES
    message = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(m in message for m in _RETRYABLE_MESSAGES)


class SQLiteStore:
    def __init__(self, db: DatabaseSettings, *, timeout: float = 30.0) -> None:
        self._path = os.path.abspath(db.path)
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._pid = os.getpid()  # the process that owns _conn and _lock_fd
        self._inherited: list[sqlite3.Connection] = []  # a parent's, kept unused and unclosed

    @property
    def path(self) -> str:
        return self._path

    @property
    def lock_path(self) -> str:
        return self._path + ".scheduler.lock"

    # -- connection ------------------------------------------------------------------

    def _after_fork(self) -> None:
        """Drop what a parent process held: never use its connection, never hold its lock."""
        if self._pid == os.getpid():
            return
        if self._conn is not None:
            # Closing it here could disturb the parent's locks; keep it alive, unused.
            self._inherited.append(self._conn)
            self._conn = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # our copy only: the parent's flock stays
            self._lock_fd = None
        self._pid = os.getpid()

    def _connect(self, create: bool) -> sqlite3.Connection:
        if create:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        mode = "rwc" if create else "rw"  # only initdb creates the file
        conn = sqlite3.connect(
            f"file:{quote(self._path)}?mode={mode}",
            uri=True,
            timeout=self._timeout,
            isolation_level=None,
        )
        try:
            conn.row_factory = _dict_row
            conn.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self, create: bool = False) -> sqlite3.Connection:
        self._after_fork()
        if self._conn is None:
            self._conn = self._connect(create)
        return self._conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """sqlite3 errors that may pass (busy past the timeout, I/O) → StoreUnavailable."""
        try:
            yield
        except sqlite3.Error as exc:
            if not _retryable(exc):
                raise
            busy = (getattr(exc, "sqlite_errorcode", 5) & 0xFF) in (5, 6)
            if not busy:
                self._drop_connection()  # an I/O problem: start over with a fresh one
            raise StoreUnavailable(f"database: {exc} ({self._path})") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock first (waiting on the busy timeout)."""
        with self._guard():
            conn = self._connection()
            if conn.in_transaction:  # left open by an interrupted call
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        with self._guard():
            return self._connection().execute(sql, _params(args)).rowcount

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._guard():
            return self._connection().execute(sql, _params(args)).fetchall()

    def ping(self) -> None:
        self._query("SELECT 1")

    def close(self) -> None:
        """Close the connection and give up the scheduler lock (as MySQL's GET_LOCK does)."""
        self._after_fork()
        self._release_lock()
        self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- schema and the application's side ---------------------------------------------

    def initdb(self) -> None:
        with self._guard():
            conn = self._connection(create=True)
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{schema_script()}\nCOMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def submit(self, task: DownloadTaskMain, item: DownloadItem | None) -> tuple[int, int | None]:
        with self._transaction() as conn:
            task_id = self._insert(conn, "download_task_main", TASK_INSERT_COLUMNS, task)
            item_id = None
            if item is not None:
                item.task_id = task_id
                item_id = self._insert(conn, "download_item", ITEM_INSERT_COLUMNS, item)
        return task_id, item_id

    @staticmethod
    def _insert(conn: sqlite3.Connection, table: str, columns: Sequence[str], row: Any) -> int:
        present = [c for c in columns if getattr(row, c, None) is not None]
        names = ", ".join(present)
        cursor = conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({_marks(present)})",
            _params(getattr(row, c) for c in present),
        )
        return int(cursor.lastrowid)

    def list_tasks(self, status: int | None, limit: int) -> list[TaskSummary]:
        if status is None:
            rows = self._query("SELECT * FROM download_task_main ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM download_task_main WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        ids = tuple(row["id"] for row in rows)
        counts = ids and self._query(
            f"SELECT task_id, status, COUNT(*) AS n FROM download_item WHERE task_id IN ({_marks(ids)}) "
            "GROUP BY task_id, status",
            ids,
        )
        return summaries(rows, counts)

    def cancel_task(self, task_id: int) -> int | None:
        """Cancel a task not yet finished; return its status after the call (None: no such task)."""
        self._execute(
            f"UPDATE download_task_main SET status = 4, last_updated_time = {NOW} "
            "WHERE id = ? AND status IN (0, 1)",
            (task_id,),
        )
        rows = self._query("SELECT status FROM download_task_main WHERE id = ?", (task_id,))
        return rows[0]["status"] if rows else None

    # -- worker ------------------------------------------------------------------------

    def claim(self, item_id: int, owner: str, route: int) -> Claim | None:
        """Claim a READY item of a task not cancelled, routed to `route`, and read it back."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT i.status, i.remark, t.status AS task_status, COALESCE(i.type, t.sub_type) AS route "
                "FROM download_item i JOIN download_task_main t ON t.id = i.task_id WHERE i.id = ?",
                (item_id,),
            ).fetchone()
            if row and row["status"] == 0 and row["task_status"] != 4 and row["route"] == route:
                token = f"{remarks.RUNNING_ON}{owner} attempt {remarks.next_attempt(row['remark'])}"
                conn.execute(
                    f"UPDATE download_item SET status = 1, remark = ?, last_updated_time = {NOW} "
                    "WHERE id = ? AND +status = 0",
                    (token, item_id),
                )
            claimed = conn.execute("SELECT * FROM download_item WHERE id = ?", (item_id,)).fetchone()
        return claim_of(claimed, owner)

    def record(self, item_id: int, token: str, outcome: Outcome, file_ttl: int) -> bool:
        if outcome.status == 2:
            sql = (
                "UPDATE download_item SET status = 2, url = ?, md5_value = ?, file_name = ?, "
                f"expire_time = COALESCE(expire_time, {NOW_PLUS}), remark = NULL, "
                f"last_updated_time = {NOW} WHERE id = ? AND status = 1 AND remark = ?"
            )
            args: tuple[Any, ...] = (
                outcome.url,
                outcome.md5,
                outcome.file_name,
                _offset(file_ttl),
                item_id,
                token,
            )
        else:
            sql = (
                f"UPDATE download_item SET status = ?, remark = ?, last_updated_time = {NOW} "
                "WHERE id = ? AND status = 1 AND remark = ?"
            )
            args = (outcome.status, outcome.remark, item_id, token)
        return self._execute(sql, args) == 1

    def load_task(self, task_id: int) -> DownloadTaskMain | None:
        rows = self._query("SELECT * FROM download_task_main WHERE id = ?", (task_id,))
        return DownloadTaskMain(rows[0]) if rows else None

    def claim_split(self, task_id: int, token: str, lease: float) -> bool:
        return (
            self._execute(
                f"UPDATE download_task_main SET remark = ?, last_updated_time = {NOW} "
                "WHERE id = ? AND status = 0 AND (remark IS NULL OR remark = ? "
                "OR remark NOT LIKE 'splitting on %' "
                f"OR last_updated_time < {NOW_PLUS})",
                (token, task_id, token, _offset(-lease)),
            )
            == 1
        )

    def commit_split(self, task_id: int, token: str, items: Sequence[DownloadItem]) -> list[int] | None:
        """All or nothing: the task becomes PROCESSING together with all its items."""
        with self._transaction() as conn:
            moved = conn.execute(
                f"UPDATE download_task_main SET status = 1, remark = NULL, last_updated_time = {NOW} "
                "WHERE id = ? AND status = 0 AND remark = ?",
                (task_id, token),
            ).rowcount
            if moved != 1:
                return None  # nothing written; the empty transaction commits
            conn.executemany(
                "INSERT INTO download_item (task_id, org_id, type, file_name, target_id, "
                "expire_time, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_params(getattr(item, c) for c in ITEM_INSERT_COLUMNS) for item in items],
            )
            rows = conn.execute("SELECT id FROM download_item WHERE task_id = ? ORDER BY id", (task_id,))
            return [row["id"] for row in rows.fetchall()]

    def fail_task(self, task_id: int, remark: str, token: str | None = None) -> bool:
        return (
            self._execute(
                f"UPDATE download_task_main SET status = -1, remark = ?, last_updated_time = {NOW} "
                "WHERE id = ? AND status = 0 AND (? IS NULL OR remark = ?)",
                (remark, task_id, token, token),
            )
            == 1
        )

    def ready_items(self, sub_type: int, limit: int) -> list[int]:
        """READY items of PROCESSING tasks routed to `sub_type`: what a polling worker may take."""
        rows = self._query(
            "SELECT i.id FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
            "WHERE i.status = 0 AND t.status = 1 AND COALESCE(i.type, t.sub_type) = ? "
            "ORDER BY i.last_updated_time LIMIT ?",
            (sub_type, limit),
        )
        return [row["id"] for row in rows]

    # -- registry ----------------------------------------------------------------------

    def register(self, reg: Registration) -> None:
        self._execute(
            "INSERT INTO dlsupervisor_subtype (sub_type, name, type, queue_key, multi, seen_time) "
            f"VALUES (?, ?, ?, ?, ?, {NOW}) ON CONFLICT (sub_type) DO UPDATE SET "
            "name = excluded.name, type = excluded.type, queue_key = excluded.queue_key, "
            "multi = excluded.multi, seen_time = excluded.seen_time",
            (reg.sub_type, reg.name, reg.type, reg.queue_key, int(reg.multi)),
        )

    def registrations(self, max_age: float) -> list[Registration]:
        rows = self._query(
            "SELECT sub_type, name, type, queue_key, multi FROM dlsupervisor_subtype "
            f"WHERE seen_time > {NOW_PLUS}",
            (_offset(-max_age),),
        )
        return registrations_of(rows)

    # -- scheduler ---------------------------------------------------------------------

    def has_work(self, file_ttl: int) -> bool:
        """Whether a pass could change anything: an active task or item, or a file due to expire."""
        rows = self._query(
            "SELECT EXISTS (SELECT 1 FROM download_task_main WHERE status IN (0, 1)) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status IN (0, 1)) "
            f"OR EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time < {NOW}) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time IS NULL "
            f"AND last_updated_time < {NOW_PLUS}) AS busy",
            (_offset(-file_ttl),),
        )
        return bool(rows[0]["busy"])

    def dispatchable_items(self, sub_types: Sequence[int], limit: int) -> list[ItemRef]:
        """READY items of READY tasks of single-item subtypes, oldest task first."""
        if not sub_types:
            return []
        rows = self._query(
            "SELECT i.id, i.task_id, COALESCE(i.type, t.sub_type) AS route "
            "FROM download_task_main t JOIN download_item i ON i.task_id = t.id "
            f"WHERE t.status = 0 AND t.sub_type IN ({_marks(sub_types)}) AND i.status = 0 "
            "ORDER BY t.id, i.id LIMIT ?",
            (*sub_types, limit),
        )
        return item_refs(rows)

    def mark_tasks_processing(self, task_ids: Iterable[int]) -> int:
        ids = tuple(task_ids)
        if not ids:
            return 0
        return self._execute(
            f"UPDATE download_task_main SET status = 1, last_updated_time = {NOW} "
            f"WHERE id IN ({_marks(ids)}) AND +status = 0",
            ids,
        )

    def splittable_tasks(self, sub_types: Sequence[int], lease: float, limit: int) -> list[tuple[int, int]]:
        """READY multi-item tasks not being split (or whose splitter went silent)."""
        if not sub_types:
            return []
        rows = self._query(
            "SELECT id, sub_type FROM download_task_main "
            f"WHERE status = 0 AND sub_type IN ({_marks(sub_types)}) AND (remark IS NULL "
            "OR remark NOT LIKE 'splitting on %' "
            f"OR last_updated_time < {NOW_PLUS}) ORDER BY id LIMIT ?",
            (*sub_types, _offset(-lease), limit),
        )
        return [(r["id"], r["sub_type"]) for r in rows]

    def unserved_subtypes(self, served: Sequence[int]) -> list[int]:
        if served:
            rows = self._query(
                "SELECT DISTINCT sub_type FROM download_task_main "
                f"WHERE status = 0 AND sub_type NOT IN ({_marks(served)})",
                tuple(served),
            )
        else:
            rows = self._query("SELECT DISTINCT sub_type FROM download_task_main WHERE status = 0")
        return sorted(r["sub_type"] for r in rows)

    def stale_ready_items(self, age: float, limit: int) -> list[ItemRef]:
        """READY items of PROCESSING tasks waiting longer than `age`: their wake-up was lost."""
        rows = self._query(
            "SELECT i.id, i.task_id, COALESCE(i.type, t.sub_type) AS route "
            "FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
            f"WHERE i.status = 0 AND i.last_updated_time < {NOW_PLUS} "
            "AND t.status = 1 ORDER BY i.last_updated_time LIMIT ?",
            (_offset(-age), limit),
        )
        return item_refs(rows)

    def fail_items(self, item_ids: Iterable[int], remark: str) -> int:
        ids = tuple(item_ids)
        if not ids:
            return 0
        return self._execute(
            f"UPDATE download_item SET status = -1, remark = ?, last_updated_time = {NOW} "
            f"WHERE id IN ({_marks(ids)}) AND +status = 0",
            (remark, *ids),
        )

    def cancel_items(self) -> int:
        """READY and PROCESSING items of cancelled tasks become CANCELLED.

        Driven from the active items (status index), each checked against its task
        by primary key: cancelled tasks pile up forever, active items do not.
        """
        return self._execute(
            f"UPDATE download_item SET status = 4, remark = 'cancelled', last_updated_time = {NOW} "
            "WHERE status IN (0, 1) AND EXISTS (SELECT 1 FROM download_task_main t "
            "WHERE t.id = download_item.task_id AND t.status = 4)"
        )

    def finished_tasks(self, limit: int) -> list[Tally]:
        rows = self._query(
            "SELECT c.*, (SELECT remark FROM download_item WHERE id = c.first_failed) AS failure "
            "FROM (SELECT i.task_id, COUNT(*) AS total, SUM(i.status = 2) AS done, "
            "SUM(i.status = -1) AS failed, SUM(i.status = 3) AS expired, "
            "SUM(i.status IN (0, 1)) AS active, "
            "MIN(CASE WHEN i.status = -1 THEN i.id END) AS first_failed "
            "FROM download_task_main t JOIN download_item i ON i.task_id = t.id "
            "WHERE t.status = 1 GROUP BY i.task_id) c WHERE c.active = 0 "
            "ORDER BY c.task_id LIMIT ?",
            (limit,),
        )
        return tallies(rows)

    def close_tasks(self, decisions: Sequence[tuple[int, int, str | None]]) -> int:
        """Finish PROCESSING tasks: [(task_id, status, remark)].

        One statement per status for the tasks closing with no remark, one for the rest.
        """
        plain, remarked = split_closures(decisions)
        closed = 0
        for status, ids in plain.items():
            closed += self._execute(
                f"UPDATE download_task_main SET status = ?, remark = NULL, last_updated_time = {NOW} "
                f"WHERE id IN ({_marks(ids)}) AND +status = 1",
                (status, *ids),
            )
        if not remarked:
            return closed
        cases = " ".join(["WHEN ? THEN ?"] * len(remarked))
        args = case_args(remarked)
        ids = [task_id for task_id, _, _ in remarked]
        return closed + self._execute(
            f"UPDATE download_task_main SET status = CASE id {cases} END, "
            f"remark = CASE id {cases} END, last_updated_time = {NOW} "
            f"WHERE id IN ({_marks(ids)}) AND +status = 1",
            (*args, *ids),
        )

    def expire(self, file_ttl: int, limit: int) -> tuple[int, int]:
        """DONE items past expire_time become EXPIRED, and so do tasks left with no DONE item.

        One transaction, so a crash never leaves a task DONE with only expired files,
        opened (taking the write lock) only when one read says something is due.
        Items the application left with no expire_time expire file_ttl after they finished.
        """
        due = self._query(
            f"SELECT EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time < {NOW}) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time IS NULL "
            f"AND last_updated_time < {NOW_PLUS}) AS due",
            (_offset(-file_ttl),),
        )
        if not due[0]["due"]:
            return 0, 0
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT id, task_id FROM download_item WHERE status = 2 AND expire_time < {NOW} "
                "ORDER BY expire_time LIMIT ?",
                (limit,),
            ).fetchall()
            rows += conn.execute(
                "SELECT id, task_id FROM download_item WHERE status = 2 AND expire_time IS NULL "
                f"AND last_updated_time < {NOW_PLUS} ORDER BY last_updated_time LIMIT ?",
                (_offset(-file_ttl), limit),
            ).fetchall()
            if not rows:
                return 0, 0
            item_ids = [r["id"] for r in rows]
            items = conn.execute(
                f"UPDATE download_item SET status = 3, last_updated_time = {NOW} "
                f"WHERE id IN ({_marks(item_ids)}) AND +status = 2",
                item_ids,
            ).rowcount
            tasks = self._expire_tasks(conn, sorted({r["task_id"] for r in rows}))
        return items, tasks

    @staticmethod
    def _expire_tasks(conn: sqlite3.Connection, task_ids: list[int]) -> int:
        """DONE tasks among these with no DONE item left become EXPIRED."""
        return conn.execute(
            f"UPDATE download_task_main SET status = 3, last_updated_time = {NOW} "
            f"WHERE id IN ({_marks(task_ids)}) AND +status = 2 AND NOT EXISTS "
            "(SELECT 1 FROM download_item i WHERE i.task_id = download_task_main.id "
            "AND +i.status = 2)",
            task_ids,
        ).rowcount

    def count_download(self, item_id: int, limit: int | None) -> tuple[bool, int, int] | None:
        """Count a download of a DONE item; at `limit` downloads the item is EXPIRED (and its
        task, if no file is left).  Returns (counted, status after, downloads), None if no item."""
        with self._transaction() as conn:
            counted = conn.execute(
                "UPDATE download_item SET download_times = COALESCE(download_times, 0) + 1 "
                "WHERE id = ? AND +status = 2",
                (item_id,),
            ).rowcount
            row = conn.execute(
                "SELECT task_id, status, download_times FROM download_item WHERE id = ?", (item_id,)
            ).fetchone()
            if row is None:
                return None
            times, status = row["download_times"] or 0, row["status"]
            if counted and limit and times >= limit:
                conn.execute(
                    f"UPDATE download_item SET status = 3, last_updated_time = {NOW} "
                    "WHERE id = ? AND +status = 2",
                    (item_id,),
                )
                self._expire_tasks(conn, [row["task_id"]])
                status = 3
        return bool(counted), status, times

    def orphans(self, lease: float, limit: int) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT id, remark FROM download_item WHERE status = 1 "
            f"AND last_updated_time < {NOW_PLUS} ORDER BY last_updated_time LIMIT ?",
            (_offset(-lease), limit),
        )
        return [(r["id"], r["remark"]) for r in rows]

    def requeue(self, item_id: int, token: str, status: int, remark: str, lease: float | None) -> bool:
        """Take an item back from its owner (READY, or FAILED at the attempt limit).

        With `lease`, only if its heartbeat is still older than that: a heartbeat
        that lands first wins.
        """
        sql = (
            f"UPDATE download_item SET status = ?, remark = ?, last_updated_time = {NOW} "
            "WHERE id = ? AND status = 1 AND remark IS ?"
        )
        args: list[Any] = [status, remark, item_id, token]
        if lease is not None:
            sql += f" AND last_updated_time < {NOW_PLUS}"
            args.append(_offset(-lease))
        return self._execute(sql, args) == 1

    # -- election ----------------------------------------------------------------------

    def lead(self, name: str, ttl: float) -> bool:
        """Hold the scheduler lock: an flock on a file beside the database.

        One lock per database file (`name` is MySQL's server-wide lock name; here the
        file already names the database).  The kernel releases it when the holding
        process dies, so `ttl` is not needed.  True while this store holds it.
        """
        self._after_fork()
        if self._lock_fd is not None:
            return True
        try:
            Path(self.lock_path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"scheduler lock {self.lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        with contextlib.suppress(OSError):  # for operators: who holds it
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()}:{os.getpid()} {name}\n".encode())
        return True

    def unlead(self, name: str) -> None:
        self._after_fork()
        self._release_lock()

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- master ------------------------------------------------------------------------

    def heartbeat(self, item_ids: Sequence[int], task_ids: Sequence[int]) -> None:
        if item_ids:
            self._execute(
                f"UPDATE download_item SET last_updated_time = {NOW} "
                f"WHERE id IN ({_marks(item_ids)}) AND +status = 1",
                tuple(item_ids),
            )
        if task_ids:
            self._execute(
                f"UPDATE download_task_main SET last_updated_time = {NOW} "
                f"WHERE id IN ({_marks(task_ids)}) AND +status = 0",
                tuple(task_ids),
            )

    def held_states(self, item_ids: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]]:
        """item id -> (status, remark, its task's status), for the items a master's workers hold."""
        if not item_ids:
            return {}
        rows = self._query(
            "SELECT i.id, i.status, i.remark, t.status AS task_status FROM download_item i "
            f"LEFT JOIN download_task_main t ON t.id = i.task_id WHERE i.id IN ({_marks(item_ids)})",
            tuple(item_ids),
        )
        return {r["id"]: (r["status"], r["remark"], r["task_status"]) for r in rows}

    def release_split(self, task_id: int, token: str) -> bool:
        """Give back a split claim (the supervisor stopped mid-split): the task stays READY."""
        return (
            self._execute(
                f"UPDATE download_task_main SET remark = NULL, last_updated_time = {NOW} "
                "WHERE id = ? AND status = 0 AND remark = ?",
                (task_id, token),
            )
            == 1
        )
