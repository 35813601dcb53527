"""The MySQL / MariaDB store (PyMySQL): one connection per process, utf8mb4.

Every statement is parameterised.  Transitions are conditional updates; the
connection uses CLIENT.FOUND_ROWS so a rowcount means "matched", which keeps
a retried claim (same token) idempotent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from typing import Any

import pymysql
from pymysql.constants import CLIENT
from pymysql.cursors import DictCursor

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

# Errors after which the connection is dropped and the call may be retried: the
# server gone, restarting or unreachable, or InnoDB having rolled the statement back.
_RETRYABLE_CODES = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1152,  # aborted connection
        1205,  # lock wait timeout
        1213,  # deadlock
        1927,  # connection killed
        2003,  # can't connect
        2006,  # server has gone away
        2013,  # lost connection during query
        2014,  # commands out of sync (a read interrupted mid-packet)
        2055,  # lost connection (system error)
        4031,  # disconnected by the server for inactivity
    }
)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return isinstance(exc, pymysql.err.OperationalError) and code in _RETRYABLE_CODES


def _insert_sql(table: str, columns: Sequence[str], row: Any, **expressions: str) -> tuple[str, list[Any]]:
    """INSERT of the row's non-None columns; `expressions` are SQL for columns (our constants)."""
    present = [c for c in columns if c not in expressions and getattr(row, c, None) is not None]
    names = ", ".join(f"`{c}`" for c in [*expressions, *present])
    values = ", ".join([*expressions.values(), *["%s"] * len(present)])
    return f"INSERT INTO `{table}` ({names}) VALUES ({values})", [getattr(row, c) for c in present]


def schema_statements() -> list[str]:
    """schema.sql split into statements (it holds no semicolons inside strings)."""
    text = resources.files("dlsupervisor").joinpath("schema.sql").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


class MySQLStore:
    def __init__(self, db: DatabaseSettings, *, timeout: float = 30.0) -> None:
        self._db = db
        self._timeout = timeout
        self._conn: pymysql.connections.Connection | None = None

    # -- connection ------------------------------------------------------------------

    def _connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self._db.host,
            port=self._db.port,
            user=self._db.user,
            password=self._db.password,
            database=self._db.name,
            charset="utf8mb4",
            autocommit=True,
            client_flag=CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS,
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
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            if not _retryable(exc):
                raise
            self.close()
            raise StoreUnavailable(f"database: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                yield cursor
            except BaseException:
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _execute(self, sql: str, args: Any = None) -> int:
        with self._cursor() as cursor:
            return cursor.execute(sql, args)

    def _query(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        with self._cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def ping(self) -> None:
        self._query("SELECT 1")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def session_counters(self) -> dict[str, int]:
        """This connection's row-read counters and statement count (the measure of a pass)."""
        rows = self._query(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Rows_read', 'Questions') "
            "OR Variable_name LIKE 'Handler\\_read\\_%%'"
        )
        return {row["Variable_name"]: int(row["Value"]) for row in rows}

    # -- schema and the application's side ---------------------------------------------

    def initdb(self) -> None:
        with self._cursor() as cursor:
            for statement in schema_statements():
                cursor.execute(statement)

    def submit(self, task: DownloadTaskMain, item: DownloadItem | None) -> tuple[int, int | None]:
        """The task and its item in one transaction, sent as one packet (one round trip)."""
        task_sql, args = _insert_sql("download_task_main", TASK_INSERT_COLUMNS, task)
        statements = ["BEGIN", task_sql]
        if item is not None:
            item_sql, item_args = _insert_sql(
                "download_item", ITEM_INSERT_COLUMNS, item, task_id="LAST_INSERT_ID()"
            )
            statements.append(item_sql)
            args += item_args
        statements.append("COMMIT")
        with self._cursor() as cursor:
            try:
                cursor.execute("; ".join(statements), args)
                ids = []
                while cursor.nextset():
                    ids.append(int(cursor.lastrowid))
            except pymysql.err.MySQLError:
                with contextlib.suppress(pymysql.err.MySQLError):
                    cursor.execute("ROLLBACK")  # a statement failed: the rest did not run
                raise
        return ids[0], ids[1] if item is not None else None

    def list_tasks(self, status: int | None, limit: int) -> list[TaskSummary]:
        if status is None:
            rows = self._query("SELECT * FROM download_task_main ORDER BY id DESC LIMIT %s", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM download_task_main WHERE status = %s ORDER BY id DESC LIMIT %s",
                (status, limit),
            )
        counts = rows and self._query(
            "SELECT task_id, status, COUNT(*) AS n FROM download_item WHERE task_id IN %s "
            "GROUP BY task_id, status",
            (tuple(row["id"] for row in rows),),
        )
        return summaries(rows, counts)

    def cancel_task(self, task_id: int) -> int | None:
        """Cancel a task not yet finished; return its status after the call (None: no such task)."""
        self._execute(
            "UPDATE download_task_main SET status = 4, last_updated_time = NOW(3) "
            "WHERE id = %s AND status IN (0, 1)",
            (task_id,),
        )
        rows = self._query("SELECT status FROM download_task_main WHERE id = %s", (task_id,))
        return rows[0]["status"] if rows else None

    # -- worker ------------------------------------------------------------------------

    def claim(self, item_id: int, owner: str, route: int) -> Claim | None:
        """Claim a READY item of a task not cancelled, routed to `route`, and read it back:
        two statements in one round trip.  The token's attempt number is the one the last
        requeue wrote, plus one (remarks.requeue_outcome's format)."""
        with self._cursor() as cursor:
            cursor.execute(
                "UPDATE download_item i SET i.status = 1, i.last_updated_time = NOW(3), "
                "i.remark = CONCAT('running on ', %(owner)s, ' attempt ', 1 + "
                "IF(i.remark LIKE 'requeued:%%', "
                "CAST(SUBSTRING_INDEX(SUBSTRING_INDEX(i.remark, '(attempt ', -1), ' ', 1) AS UNSIGNED), 0)) "
                "WHERE i.id = %(id)s AND i.status = 0 AND EXISTS (SELECT 1 FROM download_task_main t "
                "WHERE t.id = i.task_id AND t.status <> 4 AND COALESCE(i.type, t.sub_type) = %(route)s); "
                "SELECT * FROM download_item WHERE id = %(id)s",
                {"owner": owner, "id": item_id, "route": route},
            )
            cursor.nextset()
            return claim_of(cursor.fetchone(), owner)

    def record(self, item_id: int, token: str, outcome: Outcome, file_ttl: int) -> bool:
        if outcome.status == 2:
            sql = (
                "UPDATE download_item SET status = 2, url = %s, md5_value = %s, file_name = %s, "
                "expire_time = COALESCE(expire_time, NOW() + INTERVAL %s SECOND), remark = NULL, "
                "last_updated_time = NOW(3) WHERE id = %s AND status = 1 AND remark = %s"
            )
            args = (outcome.url, outcome.md5, outcome.file_name, file_ttl, item_id, token)
        else:
            sql = (
                "UPDATE download_item SET status = %s, remark = %s, last_updated_time = NOW(3) "
                "WHERE id = %s AND status = 1 AND remark = %s"
            )
            args = (outcome.status, outcome.remark, item_id, token)
        return self._execute(sql, args) == 1

    def load_task(self, task_id: int) -> DownloadTaskMain | None:
        rows = self._query("SELECT * FROM download_task_main WHERE id = %s", (task_id,))
        return DownloadTaskMain(rows[0]) if rows else None

    def claim_split(self, task_id: int, token: str, lease: float) -> bool:
        return (
            self._execute(
                "UPDATE download_task_main SET remark = %s, last_updated_time = NOW(3) "
                "WHERE id = %s AND status = 0 AND (remark IS NULL OR remark = %s "
                "OR remark NOT LIKE 'splitting on %%' "
                "OR last_updated_time < NOW(3) - INTERVAL %s SECOND)",
                (token, task_id, token, lease),
            )
            == 1
        )

    def commit_split(self, task_id: int, token: str, items: Sequence[DownloadItem]) -> list[int] | None:
        """All or nothing: the task becomes PROCESSING together with all its items."""
        with self._transaction() as cursor:
            moved = cursor.execute(
                "UPDATE download_task_main SET status = 1, remark = NULL, "
                "last_updated_time = NOW(3) WHERE id = %s AND status = 0 AND remark = %s",
                (task_id, token),
            )
            if moved != 1:
                cursor.execute("ROLLBACK")
                return None
            cursor.executemany(
                "INSERT INTO download_item (task_id, org_id, type, file_name, target_id, "
                "expire_time, data) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [tuple(getattr(item, c) for c in ITEM_INSERT_COLUMNS) for item in items],
            )
            cursor.execute("SELECT id FROM download_item WHERE task_id = %s ORDER BY id", (task_id,))
            return [row["id"] for row in cursor.fetchall()]

    def fail_task(self, task_id: int, remark: str, token: str | None = None) -> bool:
        return (
            self._execute(
                "UPDATE download_task_main SET status = -1, remark = %s, last_updated_time = NOW(3) "
                "WHERE id = %s AND status = 0 AND (%s IS NULL OR remark = %s)",
                (remark, task_id, token, token),
            )
            == 1
        )

    def ready_items(self, sub_type: int, limit: int) -> list[int]:
        """READY items of PROCESSING tasks routed to `sub_type`: what a polling worker may take."""
        rows = self._query(
            "SELECT i.id FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
            "WHERE i.status = 0 AND t.status = 1 AND COALESCE(i.type, t.sub_type) = %s "
            "ORDER BY i.last_updated_time LIMIT %s",
            (sub_type, limit),
        )
        return [row["id"] for row in rows]

    # -- registry ----------------------------------------------------------------------

    def register(self, reg: Registration) -> None:
        self._execute(
            "INSERT INTO dlsupervisor_subtype (sub_type, name, type, queue_key, multi, seen_time) "
            "VALUES (%s, %s, %s, %s, %s, NOW(3)) ON DUPLICATE KEY UPDATE name = VALUES(name), "
            "type = VALUES(type), queue_key = VALUES(queue_key), multi = VALUES(multi), "
            "seen_time = NOW(3)",
            (reg.sub_type, reg.name, reg.type, reg.queue_key, int(reg.multi)),
        )

    def registrations(self, max_age: float) -> list[Registration]:
        rows = self._query(
            "SELECT sub_type, name, type, queue_key, multi FROM dlsupervisor_subtype "
            "WHERE seen_time > NOW(3) - INTERVAL %s SECOND",
            (max_age,),
        )
        return registrations_of(rows)

    # -- scheduler ---------------------------------------------------------------------

    def has_work(self, file_ttl: int) -> bool:
        """Whether a pass could change anything: an active task or item, or a file due to expire."""
        rows = self._query(
            "SELECT EXISTS (SELECT 1 FROM download_task_main WHERE status IN (0, 1)) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status IN (0, 1)) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time < NOW()) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time IS NULL "
            "AND last_updated_time < NOW(3) - INTERVAL %s SECOND) AS busy",
            (file_ttl,),
        )
        return bool(rows[0]["busy"])

    def dispatchable_items(self, sub_types: Sequence[int], limit: int) -> list[ItemRef]:
        """READY items of READY tasks of single-item subtypes, oldest task first."""
        if not sub_types:
            return []
        rows = self._query(
            "SELECT i.id, i.task_id, COALESCE(i.type, t.sub_type) AS route "
            "FROM download_task_main t JOIN download_item i ON i.task_id = t.id "
            "WHERE t.status = 0 AND t.sub_type IN %s AND i.status = 0 "
            "ORDER BY t.id, i.id LIMIT %s",
            (tuple(sub_types), limit),
        )
        return item_refs(rows)

    def mark_tasks_processing(self, task_ids: Iterable[int]) -> int:
        ids = tuple(task_ids)
        if not ids:
            return 0
        return self._execute(
            "UPDATE download_task_main SET status = 1, last_updated_time = NOW(3) "
            "WHERE id IN %s AND status = 0",
            (ids,),
        )

    def splittable_tasks(self, sub_types: Sequence[int], lease: float, limit: int) -> list[tuple[int, int]]:
        """READY multi-item tasks not being split (or whose splitter went silent)."""
        if not sub_types:
            return []
        rows = self._query(
            "SELECT id, sub_type FROM download_task_main "
            "WHERE status = 0 AND sub_type IN %s AND (remark IS NULL "
            "OR remark NOT LIKE 'splitting on %%' "
            "OR last_updated_time < NOW(3) - INTERVAL %s SECOND) ORDER BY id LIMIT %s",
            (tuple(sub_types), lease, limit),
        )
        return [(r["id"], r["sub_type"]) for r in rows]

    def unserved_subtypes(self, served: Sequence[int]) -> list[int]:
        if served:
            rows = self._query(
                "SELECT DISTINCT sub_type FROM download_task_main WHERE status = 0 AND sub_type NOT IN %s",
                (tuple(served),),
            )
        else:
            rows = self._query("SELECT DISTINCT sub_type FROM download_task_main WHERE status = 0")
        return sorted(r["sub_type"] for r in rows)

    def stale_ready_items(self, age: float, limit: int) -> list[ItemRef]:
        """READY items of PROCESSING tasks waiting longer than `age`: their wake-up was lost."""
        rows = self._query(
            "SELECT i.id, i.task_id, COALESCE(i.type, t.sub_type) AS route "
            "FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
            "WHERE i.status = 0 AND i.last_updated_time < NOW(3) - INTERVAL %s SECOND "
            "AND t.status = 1 ORDER BY i.last_updated_time LIMIT %s",
            (age, limit),
        )
        return item_refs(rows)

    def fail_items(self, item_ids: Iterable[int], remark: str) -> int:
        ids = tuple(item_ids)
        if not ids:
            return 0
        return self._execute(
            "UPDATE download_item SET status = -1, remark = %s, last_updated_time = NOW(3) "
            "WHERE id IN %s AND status = 0",
            (remark, ids),
        )

    def cancel_items(self) -> int:
        """READY and PROCESSING items of cancelled tasks become CANCELLED."""
        return self._execute(
            "UPDATE download_item i JOIN download_task_main t ON t.id = i.task_id "
            "SET i.status = 4, i.remark = 'cancelled', i.last_updated_time = NOW(3) "
            "WHERE i.status IN (0, 1) AND t.status = 4"
        )

    def finished_tasks(self, limit: int) -> list[Tally]:
        rows = self._query(
            "SELECT c.*, (SELECT remark FROM download_item WHERE id = c.first_failed) AS failure "
            "FROM (SELECT i.task_id, COUNT(*) AS total, SUM(i.status = 2) AS done, "
            "SUM(i.status = -1) AS failed, SUM(i.status = 3) AS expired, "
            "SUM(i.status IN (0, 1)) AS active, MIN(IF(i.status = -1, i.id, NULL)) AS first_failed "
            "FROM download_task_main t JOIN download_item i ON i.task_id = t.id "
            "WHERE t.status = 1 GROUP BY i.task_id) c WHERE c.active = 0 "
            "ORDER BY c.task_id LIMIT %s",
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
                "UPDATE download_task_main SET status = %s, remark = NULL, last_updated_time = NOW(3) "
                "WHERE id IN %s AND status = 1",
                (status, tuple(ids)),
            )
        if not remarked:
            return closed
        status_case = " ".join(["WHEN %s THEN %s"] * len(remarked))
        remark_case = " ".join(["WHEN %s THEN %s"] * len(remarked))
        args = case_args(remarked)
        args.append(tuple(task_id for task_id, _, _ in remarked))
        return closed + self._execute(
            f"UPDATE download_task_main SET status = CASE id {status_case} END, "
            f"remark = CASE id {remark_case} END, last_updated_time = NOW(3) "
            "WHERE id IN %s AND status = 1",
            args,
        )

    def expire(self, file_ttl: int, limit: int) -> tuple[int, int]:
        """DONE items past expire_time become EXPIRED, and so do tasks left with no DONE item.

        One transaction, so a crash never leaves a task DONE with only expired files,
        opened only when one read says something is due (most passes: nothing is).
        Items the application left with no expire_time expire file_ttl after they finished.
        """
        due = self._query(
            "SELECT EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time < NOW()) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status = 2 AND expire_time IS NULL "
            "AND last_updated_time < NOW(3) - INTERVAL %s SECOND) AS due",
            (file_ttl,),
        )
        if not due[0]["due"]:
            return 0, 0
        with self._transaction() as cursor:
            cursor.execute(
                "SELECT id, task_id FROM download_item WHERE status = 2 AND expire_time < NOW() "
                "ORDER BY expire_time LIMIT %s FOR UPDATE",
                (limit,),
            )
            rows = list(cursor.fetchall())
            cursor.execute(
                "SELECT id, task_id FROM download_item WHERE status = 2 AND expire_time IS NULL "
                "AND last_updated_time < NOW(3) - INTERVAL %s SECOND "
                "ORDER BY last_updated_time LIMIT %s FOR UPDATE",
                (file_ttl, limit),
            )
            rows += cursor.fetchall()
            if not rows:
                return 0, 0
            items = cursor.execute(
                "UPDATE download_item SET status = 3, last_updated_time = NOW(3) "
                "WHERE id IN %s AND status = 2",
                (tuple(r["id"] for r in rows),),
            )
            tasks = self._expire_tasks(cursor, {r["task_id"] for r in rows})
        return items, tasks

    @staticmethod
    def _expire_tasks(cursor: Any, task_ids: Iterable[int]) -> int:
        """DONE tasks among these with no DONE item left become EXPIRED."""
        return cursor.execute(
            "UPDATE download_task_main t SET t.status = 3, t.last_updated_time = NOW(3) "
            "WHERE t.id IN %s AND t.status = 2 AND NOT EXISTS "
            "(SELECT 1 FROM download_item i WHERE i.task_id = t.id AND i.status = 2)",
            (tuple(task_ids),),
        )

    def count_download(self, item_id: int, limit: int | None) -> tuple[bool, int, int] | None:
        """Count a download of a DONE item; at `limit` downloads the item is EXPIRED (and its
        task, if no file is left).  Returns (counted, status after, downloads), None if no item."""
        with self._transaction() as cursor:
            counted = cursor.execute(
                "UPDATE download_item SET download_times = COALESCE(download_times, 0) + 1 "
                "WHERE id = %s AND status = 2",
                (item_id,),
            )
            cursor.execute(
                "SELECT task_id, status, download_times FROM download_item WHERE id = %s", (item_id,)
            )
            row = cursor.fetchone()
            if row is None:
                return None
            times, status = row["download_times"] or 0, row["status"]
            if counted and limit and times >= limit:
                cursor.execute(
                    "UPDATE download_item SET status = 3, last_updated_time = NOW(3) "
                    "WHERE id = %s AND status = 2",
                    (item_id,),
                )
                self._expire_tasks(cursor, [row["task_id"]])
                status = 3
        return bool(counted), status, times

    def orphans(self, lease: float, limit: int) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT id, remark FROM download_item WHERE status = 1 "
            "AND last_updated_time < NOW(3) - INTERVAL %s SECOND "
            "ORDER BY last_updated_time LIMIT %s",
            (lease, limit),
        )
        return [(r["id"], r["remark"]) for r in rows]

    def requeue(self, item_id: int, token: str, status: int, remark: str, lease: float | None) -> bool:
        """Take an item back from its owner (READY, or FAILED at the attempt limit).

        With `lease`, only if its heartbeat is still older than that: a heartbeat
        that lands first wins.
        """
        sql = (
            "UPDATE download_item SET status = %s, remark = %s, last_updated_time = NOW(3) "
            "WHERE id = %s AND status = 1 AND remark <=> %s"
        )
        args: list[Any] = [status, remark, item_id, token]
        if lease is not None:
            sql += " AND last_updated_time < NOW(3) - INTERVAL %s SECOND"
            args.append(lease)
        return self._execute(sql, args) == 1

    def lead(self, name: str, ttl: float) -> bool:
        """Hold the named lock on this connection (the scheduler election without Redis).

        wait_timeout bounds how long a lock outlives a host that vanished mid-session.
        """
        if self._query("SELECT IS_USED_LOCK(%s) = CONNECTION_ID() AS mine", (name,))[0]["mine"]:
            return True
        self._execute("SET SESSION wait_timeout = %s", (max(int(ttl), 5),))
        return self._query("SELECT GET_LOCK(%s, 0) AS got", (name,))[0]["got"] == 1

    def unlead(self, name: str) -> None:
        self._query("SELECT RELEASE_LOCK(%s) AS released", (name,))

    # -- master ------------------------------------------------------------------------

    def heartbeat(self, item_ids: Sequence[int], task_ids: Sequence[int]) -> None:
        if item_ids:
            self._execute(
                "UPDATE download_item SET last_updated_time = NOW(3) WHERE id IN %s AND status = 1",
                (tuple(item_ids),),
            )
        if task_ids:
            self._execute(
                "UPDATE download_task_main SET last_updated_time = NOW(3) WHERE id IN %s AND status = 0",
                (tuple(task_ids),),
            )

    def held_states(self, item_ids: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]]:
        """item id -> (status, remark, its task's status), for the items a master's workers hold."""
        if not item_ids:
            return {}
        rows = self._query(
            "SELECT i.id, i.status, i.remark, t.status AS task_status FROM download_item i "
            "LEFT JOIN download_task_main t ON t.id = i.task_id WHERE i.id IN %s",
            (tuple(item_ids),),
        )
        return {r["id"]: (r["status"], r["remark"], r["task_status"]) for r in rows}

    def release_split(self, task_id: int, token: str) -> bool:
        """Give back a split claim (the supervisor stopped mid-split): the task stays READY."""
        return (
            self._execute(
                "UPDATE download_task_main SET remark = NULL, last_updated_time = NOW(3) "
                "WHERE id = %s AND status = 0 AND remark = %s",
                (task_id, token),
            )
            == 1
        )
