"""The MySQL / MariaDB backend of the SQL store (PyMySQL): one connection per process, utf8mb4.

mysqlclient.py is the same store on mysqlclient (the C client), for the driver that
[database] driver chooses; what differs between the two is the connection, the
errors' classes and the multi-statement query, each a method here.

The statements are sql.py's; here are the connection, transactions, the
classification of errors, and what only MySQL does: the claim and its read-back
in one round trip, the submit in one packet, a download below its limit counted by one
statement, GET_LOCK.  The connection uses
CLIENT.FOUND_ROWS so a rowcount means "matched", which keeps a retried claim
(same token) idempotent.  It refuses multiple statements in one query (so an
injected `;` cannot stack a statement) except inside `_multi_statement`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from types import ModuleType
from typing import Any, NamedTuple

import pymysql
from pymysql.constants import CLIENT, COMMAND
from pymysql.cursors import DictCursor

from dlsupervisor.config import DatabaseSettings
from dlsupervisor.connections import mysql_connect
from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus
from dlsupervisor.store.records import ITEM_INSERT_COLUMNS, TASK_INSERT_COLUMNS, Claim, Recording, claim_of
from dlsupervisor.store.sql import Dialect, Failure, SqlStore, claim_sql, insert_sql, record_sql

log = logging.getLogger(__name__)

# The server gone, restarting or unreachable: drop the connection, the call may be retried.
_OUTAGE_CODES = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1152,  # aborted connection
        1927,  # connection killed
        2002,  # can't connect (the C client's, over TCP too)
        2003,  # can't connect
        2005,  # unknown host (the C client's; PyMySQL says 2003)
        2006,  # server has gone away
        2013,  # lost connection during query
        2014,  # commands out of sync (a read interrupted mid-packet)
        2055,  # lost connection (system error)
        4031,  # disconnected by the server for inactivity
    }
)
# InnoDB rolled the statement back: the connection is sound, the call may be retried.
_ROLLED_BACK_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock
# A read-only server (a failover demoted it): writes are out until a reconnect finds the
# new primary, so an outage of writes.
_READ_ONLY_CODES = frozenset({1290, 1836})
# Refused for lack of a privilege: no retry helps, an operator must act; raised as is.
_REFUSED_CODES = frozenset({1142, 1227})


def classify(exc: BaseException, errors: ModuleType = pymysql.err) -> Failure:
    """What a driver's error means to the caller (read-only counts as an outage of writes);
    `errors`: the driver's module of DB-API error classes (both use the server's codes)."""
    if isinstance(exc, errors.InterfaceError):
        return Failure.OUTAGE
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if not isinstance(exc, errors.MySQLError) or code in _REFUSED_CODES:
        return Failure.BUG
    if code in _OUTAGE_CODES or code in _READ_ONLY_CODES:
        return Failure.OUTAGE
    return Failure.ROLLED_BACK if code in _ROLLED_BACK_CODES else Failure.BUG


# COM_SET_OPTION's argument: MYSQL_OPTION_MULTI_STATEMENTS_ON / _OFF.
_MULTI_ON, _MULTI_OFF = struct.pack("<H", 0), struct.pack("<H", 1)


class Result(NamedTuple):
    """One statement's result in a multi-statement query, whichever the driver."""

    affected_rows: int
    insert_id: int
    rows: list[dict[str, Any]]


def _result(result: Any) -> Result:
    """A PyMySQL result, its rows as dicts (as DictCursor would give them)."""
    names = [field.name for field in getattr(result, "fields", None) or ()]  # none: not a SELECT
    rows = [dict(zip(names, row, strict=True)) for row in result.rows or ()]
    return Result(int(result.affected_rows or 0), int(result.insert_id or 0), rows)


def _send_together(conn: Any, commands: Sequence[tuple[int, Any]]) -> None:
    """Send commands as PyMySQL would, in one write: each write to a loopback socket is a
    system call that also runs the receiving side's TCP work, the worker's largest cost
    per item (py-spy), so three packets written together cost one."""
    chunks: list[bytes] = []
    conn._write_bytes = chunks.append  # shadows the method for these commands only
    try:
        for command, payload in commands:
            conn._execute_command(command, payload)
    finally:
        del conn._write_bytes
    conn._write_bytes(b"".join(chunks))


def _command_reply(conn: Any) -> Any:
    """Read the first packet of the reply to the next command sent (PyMySQL numbers them)."""
    conn._next_seq_id = 1
    return conn._read_packet()


def _query_results(conn: Any) -> list[Result]:
    """Every result of a query's reply; the server stops at the first statement that fails."""
    conn._next_seq_id = 1
    conn._read_query_result()
    results = [conn._result]
    while results[-1].has_next:
        conn.next_result()
        results.append(conn._result)
    return [_result(result) for result in results]


def _sql(text: str) -> str:
    """sql.py's `?` placeholders as PyMySQL's (its statements hold no other `?` or `%`)."""
    return text.replace("?", "%s")


def _args(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(int(a) if isinstance(a, enum.IntEnum) else a for a in args)


@dataclass(frozen=True)
class MySQLDialect(Dialect):
    def upsert(self, key: str, columns: Sequence[str]) -> str:
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in columns)

    def accumulate(self, key: str, column: str) -> str:
        return f"ON DUPLICATE KEY UPDATE {column} = {column} + VALUES({column})"


MYSQL = MySQLDialect(
    now="NOW(3)",
    now_plus="NOW(3) + INTERVAL ? SECOND",
    whole_now="NOW()",
    whole_now_plus="NOW() + INTERVAL ? SECOND",
    key_prefix="",
    null_safe_eq="<=>",
    for_update=" FOR UPDATE",
)


class _Session:
    """A PyMySQL cursor speaking sql.py's statements."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.cursor.execute(_sql(sql), _args(args))

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.cursor.execute(_sql(sql), _args(args))
        return list(self.cursor.fetchall())

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(_sql(sql), [_args(row) for row in rows])

    def insert(self, sql: str, args: Sequence[Any]) -> int:
        self.cursor.execute(_sql(sql), _args(args))
        return int(self.cursor.lastrowid)


def schema_statements() -> list[str]:
    """schema.sql split into statements (it holds no semicolons inside strings)."""
    text = resources.files("dlsupervisor").joinpath("schema.sql").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


class MySQLStore(SqlStore):
    dialect = MYSQL
    errors: ModuleType = pymysql.err  # the driver's DB-API error classes

    def __init__(self, db: DatabaseSettings, *, timeout: float = 30.0) -> None:
        self._db = db
        self._timeout = timeout
        self._conn: Any = None

    # -- connection ------------------------------------------------------------------

    def _connect(self) -> Any:
        return mysql_connect(  # the url's host, credentials and TLS (connections.py)
            self._db,
            charset="utf8mb4",
            autocommit=True,
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=min(self._timeout, 10),
            read_timeout=self._timeout,
            write_timeout=self._timeout,
            cursorclass=DictCursor,
        )

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        try:
            if self._conn is None:
                self._conn = self._connect()
            with self._conn.cursor() as cursor:
                yield cursor
        except self.errors.MySQLError as exc:
            failure = classify(exc, self.errors)
            if failure is Failure.BUG:
                raise
            if failure is Failure.OUTAGE:
                self.close()
            raise StoreUnavailable(f"database: {exc}") from exc

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Session]:
        with self._cursor() as cursor:
            yield _Session(cursor)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Session]:
        with self._cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                yield _Session(cursor)
            except BaseException:
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def session_counters(self) -> dict[str, int]:
        """This connection's row-read counters and statement count (the measure of a pass)."""
        with self._cursor() as cursor:
            cursor.execute(
                "SHOW SESSION STATUS WHERE Variable_name IN ('Rows_read', 'Questions') "
                "OR Variable_name LIKE 'Handler\\_read\\_%'"
            )
            return {row["Variable_name"]: int(row["Value"]) for row in cursor.fetchall()}

    # -- what MySQL does in fewer round trips ------------------------------------------

    def _multi_statement(self, cursor: Any, sql: str, args: Sequence[Any]) -> list[Result]:
        """Run several statements, one query, on this connection that otherwise refuses them.

        COM_SET_OPTION switches multiple statements on before the query and off after
        it, the three commands sent back to back before any reply is read: the server
        answers them in order, so the switching costs no round trip, and no other
        query ever runs with the option on.  PyMySQL has no call for this, so the
        commands go through its packet layer.  Any failure other than a statement
        refused leaves the option's state unknown: the connection is closed (as an
        outage would close it anyway).
        """
        conn = cursor.connection
        query = cursor.mogrify(_sql(sql), _args(args))
        _send_together(
            conn,
            [
                (COMMAND.COM_SET_OPTION, _MULTI_ON),
                (COMMAND.COM_QUERY, query),
                (COMMAND.COM_SET_OPTION, _MULTI_OFF),
            ],
        )
        switched_off = False
        try:
            _command_reply(conn)
            refused: pymysql.err.MySQLError | None = None
            try:
                results = _query_results(conn)
            except pymysql.err.MySQLError as exc:
                if classify(exc) is Failure.OUTAGE:
                    raise
                refused = exc
            _command_reply(conn)
            switched_off = True
        finally:
            if not switched_off:
                self.close()
        if refused is not None:
            raise refused
        return results

    def initdb(self) -> None:
        with self._cursor() as cursor:
            for statement in schema_statements():
                cursor.execute(statement)

    def submit(self, task: DownloadTaskMain, item: DownloadItem | None) -> tuple[int, int | None]:
        """The task and its item in one transaction, sent as one packet (one round trip)."""
        task_sql, args = insert_sql("download_task_main", TASK_INSERT_COLUMNS, task)
        statements = ["BEGIN", task_sql]
        if item is not None:
            item_sql, item_args = insert_sql(
                "download_item", ITEM_INSERT_COLUMNS, item, task_id="LAST_INSERT_ID()"
            )
            statements.append(item_sql)
            args += item_args
        statements.append("COMMIT")
        with self._cursor() as cursor:
            results = self._in_one_transaction(cursor, "; ".join(statements), args)
        ids = [result.insert_id for result in results[1:-1]]
        return ids[0], ids[1] if item is not None else None

    def claim(self, item_id: int, owner: str, sub_type: int, cap: int = 0) -> Claim | None:
        """sql.py's claim and the read-back, two statements in one round trip (a capped
        claim is sql.py's own: a lock, a count, then the claim)."""
        if cap:
            return super().claim(item_id, owner, sub_type, cap)
        sql, args = claim_sql(self.dialect, item_id, owner, sub_type)
        with self._cursor() as cursor:
            results = self._multi_statement(
                cursor, f"{sql}; SELECT * FROM download_item WHERE id = ?", [*args, item_id]
            )
        rows = results[1].rows
        return claim_of(rows[0] if rows else None, owner)

    def record_and_claim(
        self, done: Recording, next_id: int, owner: str, sub_type: int, cap: int = 0
    ) -> tuple[bool, Claim | None]:
        """sql.py's, as one packet: the record, the claim and its read-back in one
        transaction and one round trip (a capped claim is sql.py's own)."""
        if cap:
            return super().record_and_claim(done, next_id, owner, sub_type, cap)
        record, record_args = record_sql(self.dialect, *done)
        claim, claim_args = claim_sql(self.dialect, next_id, owner, sub_type)
        sql = f"BEGIN; {record}; {claim}; SELECT * FROM download_item WHERE id = ?; COMMIT"
        with self._cursor() as cursor:
            results = self._in_one_transaction(cursor, sql, [*record_args, *claim_args, next_id])
        rows = results[3].rows
        return results[1].affected_rows == 1, claim_of(rows[0] if rows else None, owner)

    def _in_one_transaction(self, cursor: Any, sql: str, args: Sequence[Any]) -> list[Result]:
        """`BEGIN; ...; COMMIT` as one query: a statement that fails stops the rest, and the
        transaction it leaves open is rolled back, so nothing of it stays."""
        try:
            return self._multi_statement(cursor, sql, args)
        except self.errors.MySQLError:
            if self._conn is not None:
                with contextlib.suppress(self.errors.MySQLError):
                    cursor.execute("ROLLBACK")
            raise

    def count_download(
        self, item_id: int, limit: int | None, file_grace: float = 0.0
    ) -> tuple[bool, int, int] | None:
        """sql.py's count, in one autocommit statement when this download cannot be the last.

        Concurrent downloads of one item queue on its row lock, which sql.py's transaction
        holds from its UPDATE to its COMMIT: three round trips of a web child's thread,
        each waiting for the GIL behind the threads sending files, so the downloads of a
        popular item went one at a time at that pace.  Here a download that stays below
        the limit (or has none) is one conditional UPDATE, committed on its own, its new
        count read from the reply (LAST_INSERT_ID(expr)).  When it matches nothing (the
        item is not DONE, or this download would reach the limit), sql.py's transaction
        decides: the last download still expires the item, its task and its file together.
        """
        limit = limit or 0
        times = "COALESCE(download_times, 0)"
        with self._cursor() as cursor:
            counted = cursor.execute(
                f"UPDATE download_item SET download_times = LAST_INSERT_ID({times} + 1) "
                f"WHERE id = %s AND {self.dialect.keyed('status')} = %s AND (%s = 0 OR {times} + 1 < %s)",
                (item_id, int(ItemStatus.DONE), limit, limit),
            )
            downloads = int(cursor.lastrowid or 0)
        if counted:
            return True, ItemStatus.DONE, downloads
        return super().count_download(item_id, limit, file_grace)

    # -- the scheduler's election without Redis ------------------------------------------

    def lead(self, name: str, ttl: float) -> bool:
        """Hold the named lock on this connection (election.StoreLockElection).

        wait_timeout bounds how long a lock outlives a host that vanished mid-session.
        """
        if self._query("SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS mine", (name,))[0]["mine"]:
            return True
        self._execute("SET SESSION wait_timeout = ?", (max(int(ttl), 5),))
        return self._query("SELECT GET_LOCK(?, 0) AS got", (name,))[0]["got"] == 1

    def unlead(self, name: str) -> None:
        self._query("SELECT RELEASE_LOCK(?) AS released", (name,))
