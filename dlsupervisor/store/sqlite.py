"""The SQLite backend of the SQL store (stdlib sqlite3), the embedded default: one file, WAL mode.

The statements are sql.py's; here are the connection (and fork), transactions,
the classification of errors, the dialect, and the scheduler's file lock.  The connection is
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
whole history (architecture.md, invariant 7).

Timestamps are text 'YYYY-MM-DD HH:MM:SS.fff' in UTC (they compare as text and
use the indexes); loaded rows carry them as naive datetimes, as PyMySQL's do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dlsupervisor.config import DatabaseSettings
from dlsupervisor.election import FileLock
from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.store.sql import Dialect, Failure, SqlStore

log = logging.getLogger(__name__)

# Primary result codes after which the call may be retried: another writer held the
# lock past the busy timeout (the connection is sound), or the file is unreachable,
# unwritable or full for now (start over with a fresh connection).
_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_OUTAGE_CODES = frozenset(
    {
        8,  # SQLITE_READONLY: an outage of writes
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
_OUTAGE_MESSAGES = ("disk i/o error", "unable to open", "database or disk is full", "readonly database")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # trimmed to milliseconds by to_text()
TIMESTAMP_COLUMNS = frozenset(
    {
        "created_time",
        "last_updated_time",
        "expire_time",
        "seen_time",
        "updated_time",
        "next_try",
        "delivered_time",
    }
)

NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
NOW_PLUS = "strftime('%Y-%m-%d %H:%M:%f', 'now', ?)"


@dataclass(frozen=True)
class SQLiteDialect(Dialect):
    def seconds(self, value: float) -> str:
        """The strftime modifier for `now + value`."""
        return f"{value:+.3f} seconds"

    def upsert(self, key: str, columns: Sequence[str]) -> str:
        return f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns)

    def accumulate(self, key: str, column: str) -> str:
        return f"ON CONFLICT ({key}) DO UPDATE SET {column} = {column} + excluded.{column}"


SQLITE = SQLiteDialect(
    now=NOW,
    now_plus=NOW_PLUS,
    whole_now=NOW,
    whole_now_plus=NOW_PLUS,
    key_prefix="+",
    null_safe_eq="IS",
    for_update="",
)


class _Session:
    """An sqlite3 connection speaking sql.py's statements (timestamps as stored text)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, _params(args)).rowcount

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.conn.execute(sql, _params(args)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, [_params(row) for row in rows])

    def insert(self, sql: str, args: Sequence[Any]) -> int:
        return int(self.conn.execute(sql, _params(args)).lastrowid)


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


def _params(args: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(
        to_text(a) if isinstance(a, datetime) else int(a) if isinstance(a, IntEnum) else a for a in args
    )


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for column, value in zip(cursor.description, row, strict=True):
        name = column[0]
        if name in TIMESTAMP_COLUMNS and isinstance(value, str):
            value = to_datetime(value)
        out[name] = value
    return out


def classify(exc: sqlite3.Error) -> Failure:
    """What an sqlite3 error means to the caller: busy (retry on this connection), an outage
    of the file (retry on a new one; a read-only file is an outage of writes), or a bug."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        message = str(exc).lower()
        if not isinstance(exc, sqlite3.OperationalError):
            return Failure.BUG
        if "database is locked" in message:
            return Failure.ROLLED_BACK
        return Failure.OUTAGE if any(m in message for m in _OUTAGE_MESSAGES) else Failure.BUG
    if code & 0xFF in _BUSY_CODES:
        return Failure.ROLLED_BACK
    return Failure.OUTAGE if code & 0xFF in _OUTAGE_CODES else Failure.BUG


class SQLiteStore(SqlStore):
    dialect = SQLITE

    def __init__(self, db: DatabaseSettings, *, timeout: float = 30.0) -> None:
        self._path = os.path.abspath(db.path)
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = FileLock(self._path + ".scheduler.lock")
        self._pid = os.getpid()  # the process that owns _conn
        self._inherited: list[sqlite3.Connection] = []  # a parent's, kept unused and unclosed

    @property
    def path(self) -> str:
        return self._path

    @property
    def lock_path(self) -> str:
        return self._lock.path

    # -- connection ------------------------------------------------------------------

    def _after_fork(self) -> None:
        """Drop what a parent process held: never use its connection (FileLock drops its lock)."""
        if self._pid == os.getpid():
            return
        if self._conn is not None:
            # Closing it here could disturb the parent's locks; keep it alive, unused.
            self._inherited.append(self._conn)
            self._conn = None
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
            failure = classify(exc)
            if failure is Failure.BUG:
                raise
            if failure is Failure.OUTAGE:
                self._drop_connection()  # an I/O problem: start over with a fresh one
            raise StoreUnavailable(f"database: {exc} ({self._path})") from exc

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Session]:
        with self._guard():
            yield _Session(self._connection())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Session]:
        """BEGIN IMMEDIATE: take the write lock first (waiting on the busy timeout)."""
        with self._guard():
            conn = self._connection()
            if conn.in_transaction:  # left open by an interrupted call
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Session(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection and give up the scheduler lock (as MySQL's GET_LOCK does)."""
        self._after_fork()
        self._lock.release()
        self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- schema ----

    def initdb(self) -> None:
        with self._guard():
            conn = self._connection(create=True)
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{schema_script()}\nCOMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- the scheduler's election without Redis ------------------------------------------

    def lead(self, name: str, ttl: float) -> bool:
        """Hold the scheduler lock (election.FileLock on a file beside the database).

        One lock per database file (`name` is MySQL's server-wide lock name; here the
        file already names the database).  The kernel releases it when the holding
        process dies, so `ttl` is not needed.  True while this store holds it.
        """
        return self._lock.hold(name)

    def unlead(self, name: str) -> None:
        self._lock.release()
