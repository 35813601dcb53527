"""Every statement of the store, written once for both SQL backends (after huey's BaseSqlStorage).

Statements use `?` placeholders and take statuses, remarks and LIKE patterns as
parameters (remarks.py owns the texts).  What MySQL and SQLite spell differently
(the clock, time arithmetic, upserts, row locks, SQLite's `+status` that keeps
its planner on the primary key) comes from the backend's Dialect.  A backend
supplies connections and transactions (`_session`, `_transaction`), and
overrides the few methods it does in fewer round trips.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dlsupervisor import counters, remarks
from dlsupervisor.errors import StoreUnavailable
from dlsupervisor.model import DownloadItem, DownloadTaskMain, ItemStatus, TaskStatus
from dlsupervisor.registry import Registration
from dlsupervisor.store.records import (
    ITEM_INSERT_COLUMNS,
    TASK_INSERT_COLUMNS,
    Claim,
    Decision,
    DueFile,
    ItemRef,
    NoticeRef,
    NoticeState,
    Outcome,
    Progress,
    ProgressReport,
    Recording,
    SplitCommit,
    Tally,
    TaskSummary,
    claim_of,
    item_refs,
    maybe_int,
    notice_refs,
    progress_of,
    split_closures,
    summaries,
    tallies,
)

log = logging.getLogger("dlsupervisor.store")

ACTIVE = (ItemStatus.READY, ItemStatus.PROCESSING)  # the same numbers for tasks and items
NOTICE_KINDS = ("hook", "webhook")  # on_task_finished, and the POST to notify_url
REGISTRATION_COLUMNS = ("sub_type", "name", "type", "queue_key", "multi")
# Stored files due for deletion (index_dls_file_due): `{now}` is the dialect's clock.
FILES_DUE = "SELECT 1 FROM dlsupervisor_file WHERE deleted_time IS NULL AND next_try <= {now}"
FILE_COLUMNS = ("storage_key", "stored_time", "next_try", "attempts", "deleted_time")
TOP = 1  # download_task_main.top of a pinned task: its items go first


class Failure(enum.Enum):
    """What a backend's error means to the caller (each backend classifies its own)."""

    OUTAGE = "outage"  # StoreUnavailable, after dropping the connection: retry on a new one
    ROLLED_BACK = "rolled back"  # StoreUnavailable: busy or deadlocked, retry on this connection
    BUG = "bug"  # raised as is


@dataclass(frozen=True)
class Dialect:
    """What one SQL dialect spells its own way; every field is a constant SQL fragment."""

    now: str  # the current time, to the millisecond
    now_plus: str  # the current time plus `?` (a `seconds()` value), to the millisecond
    whole_now: str  # the current time, to the second (expire_time's precision)
    whole_now_plus: str  # the same, plus `?`
    key_prefix: str  # before a column compared on rows picked by primary key (SQLite: `+`)
    null_safe_eq: str  # `a <op> b` true when both are NULL
    for_update: str  # appended to a SELECT whose rows the transaction goes on to update

    def keyed(self, column: str) -> str:
        """`column` in a condition on rows already picked by primary key (or by task_id)."""
        return f"{self.key_prefix}{column}"

    def seconds(self, value: float) -> Any:
        """The parameter for `now_plus` that shifts the clock by `value` seconds."""
        return value

    def upsert(self, key: str, columns: Sequence[str]) -> str:
        """The clause after INSERT ... VALUES that overwrites `columns` of a row with this key."""
        raise NotImplementedError

    def accumulate(self, key: str, column: str) -> str:
        """The clause after INSERT ... VALUES that adds to `column` of a row with this key."""
        raise NotImplementedError


class Session(Protocol):
    """One connection's statements: autocommit, or inside a transaction."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def insert(self, sql: str, args: Sequence[Any]) -> int: ...


def marks(values: Sequence[Any]) -> str:
    """`?, ?, ?` for an IN list of len(values)."""
    return ", ".join(["?"] * len(values))


def insert_sql(table: str, columns: Sequence[str], row: Any, **expressions: str) -> tuple[str, list[Any]]:
    """INSERT of the row's non-None columns; `expressions` are SQL for columns (our constants)."""
    present = [c for c in columns if c not in expressions and getattr(row, c, None) is not None]
    names = ", ".join([*expressions, *present])
    values = ", ".join([*expressions.values(), *["?"] * len(present)])
    return f"INSERT INTO {table} ({names}) VALUES ({values})", [getattr(row, c) for c in present]


def claim_sql(dialect: Dialect, item_id: int, owner: str, sub_type: int) -> tuple[str, list[Any]]:
    """The claim: a READY item of a task not cancelled, served by `sub_type`, becomes PROCESSING
    with `owner`'s token, its attempt chosen from the requeue remark (remarks.claim_tokens)."""
    cases, first = remarks.claim_tokens(owner)
    sql = (
        "UPDATE download_item SET status = ?, remark = CASE "
        + " ".join(["WHEN remark LIKE ? THEN ?"] * len(cases))
        + f" ELSE ? END, last_updated_time = {dialect.now} WHERE id = ? AND {dialect.keyed('status')} = ? "
        "AND EXISTS (SELECT 1 FROM download_task_main t WHERE t.id = download_item.task_id "
        "AND t.status <> ? AND COALESCE(download_item.type, t.sub_type) = ?)"
    )
    args: list[Any] = [ItemStatus.PROCESSING, *(v for case in cases for v in case), first]
    return sql, [*args, item_id, ItemStatus.READY, TaskStatus.CANCELLED, sub_type]


def record_sql(
    dialect: Dialect, item_id: int, token: str, outcome: Outcome, file_ttl: int
) -> tuple[str, tuple[Any, ...]]:
    """The outcome of an item still PROCESSING under `token` (the claim's fence)."""
    fence = f"WHERE id = ? AND {dialect.keyed('status')} = ? AND remark = ?"
    if outcome.status == ItemStatus.DONE:
        sql = (
            "UPDATE download_item SET status = ?, url = ?, md5_value = ?, file_name = ?, "
            f"expire_time = COALESCE(expire_time, {dialect.whole_now_plus}), remark = NULL, "
            f"last_updated_time = {dialect.now} {fence}"
        )
        args: tuple[Any, ...] = (
            ItemStatus.DONE,
            outcome.url,
            outcome.md5,
            outcome.file_name,
            dialect.seconds(file_ttl),
        )
    else:
        sql = f"UPDATE download_item SET status = ?, remark = ?, last_updated_time = {dialect.now} {fence}"
        args = (outcome.status, outcome.remark)
    return sql, (*args, item_id, ItemStatus.PROCESSING, token)


def ranked_ready_sql(inner: str, outer: str, order: str = "r.pos") -> str:
    """READY items of active tasks, each with its place in its org's line (`pos`, 0 first;
    `top` items first, then by id) within the subtype that serves it (fairness, contract §9).

    Parameters: READY (item), READY, PROCESSING (task), TOP (the pinned value), then the
    `inner` condition's (on `i`, `t`), the `outer` one's (on the ranked row `r`), `order`'s.
    """
    return (
        "SELECT r.* FROM (SELECT i.id, i.task_id, i.org_id, i.last_updated_time, t.status AS task_status, "
        "COALESCE(i.type, t.sub_type) AS sub_type, CASE WHEN t.top = ? THEN 1 ELSE 0 END AS top, "
        "ROW_NUMBER() OVER (PARTITION BY COALESCE(i.type, t.sub_type), i.org_id "
        "ORDER BY CASE WHEN t.top = ? THEN 0 ELSE 1 END, i.id) AS pos "
        "FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
        f"WHERE i.status = ? AND t.status IN (?, ?) AND {inner}) r WHERE {outer} "
        f"ORDER BY r.top DESC, {order}, r.id LIMIT ?"
    )


# The ranked row's org has room under a cap: its place in line is within the cap less what
# runs (parameters: room_args).  No cap (0) lets every row through.
RUNNING = (
    "(SELECT COUNT(*) FROM download_item p JOIN download_task_main pt ON pt.id = p.task_id "
    "WHERE p.org_id = r.org_id AND p.status = ? AND COALESCE(p.type, pt.sub_type) = ?)"
)  # the ranked row's org's running items (parameters: PROCESSING, sub_type)
ROOM = f"(? = 0 OR r.pos <= ? - {RUNNING})"


def room_args(sub_type: int, cap: int) -> list[Any]:
    return [cap, cap, ItemStatus.PROCESSING, sub_type]


def ranked_args(*args: Any) -> list[Any]:
    """The leading parameters of ranked_ready_sql, before its conditions' own."""
    return [TOP, TOP, ItemStatus.READY, TaskStatus.READY, TaskStatus.PROCESSING, *args]


def _case_args(decisions: Sequence[Decision]) -> list[Any]:
    """Parameters for `status = CASE id WHEN ? THEN ? ... END, remark = CASE id ... END`."""
    args: list[Any] = []
    for task_id, status, _ in decisions:
        args += [task_id, status]
    for task_id, _, remark in decisions:
        args += [task_id, remark]
    return args


class SqlStore:
    """The store over any SQL backend that supplies a Dialect, sessions and transactions."""

    dialect: Dialect

    # -- what a backend supplies -------------------------------------------------------

    def _session(self) -> contextlib.AbstractContextManager[Session]:
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractContextManager[Session]:
        raise NotImplementedError

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._session() as session:
            return session.execute(sql, args)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._session() as session:
            return session.query(sql, args)

    def ping(self) -> None:
        self._query("SELECT 1")

    # -- the application's side --------------------------------------------------------

    def submit(self, task: DownloadTaskMain, item: DownloadItem | None) -> tuple[int, int | None]:
        """The task and its item in one transaction."""
        with self._transaction() as session:
            task_id = session.insert(*insert_sql("download_task_main", TASK_INSERT_COLUMNS, task))
            item_id = None
            if item is not None:
                item.task_id = task_id
                item_id = session.insert(*insert_sql("download_item", ITEM_INSERT_COLUMNS, item))
        return task_id, item_id

    def list_tasks(self, status: int | None, limit: int) -> list[TaskSummary]:
        if status is None:
            rows = self._query("SELECT * FROM download_task_main ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM download_task_main WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        ids = [row["id"] for row in rows]
        counts = ids and self._query(
            f"SELECT task_id, status, COUNT(*) AS n FROM download_item WHERE task_id IN ({marks(ids)}) "
            "GROUP BY task_id, status",
            ids,
        )
        return summaries(rows, counts, self.task_progress(ids))

    def task_progress(self, task_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Progress summed per task over its PROCESSING and DONE items (a DONE item with a
        total counts as complete; a requeued or failed one not at all), by the task_id index."""
        if not task_ids:
            return []
        return self._query(
            "SELECT p.task_id, SUM(CASE WHEN i.status = ? AND p.total IS NOT NULL THEN p.total "
            "ELSE p.done END) AS done, SUM(p.total) AS total, COUNT(p.total) AS known, COUNT(*) AS n "
            "FROM dlsupervisor_progress p JOIN download_item i ON i.id = p.item_id "
            f"WHERE p.task_id IN ({marks(task_ids)}) AND i.status IN (?, ?) GROUP BY p.task_id",
            (ItemStatus.DONE, *task_ids, ItemStatus.PROCESSING, ItemStatus.DONE),
        )

    def cancel_task(self, task_id: int) -> int | None:
        """Cancel a task not yet finished; return its status after the call (None: no such task)."""
        self._execute(
            f"UPDATE download_task_main SET status = ?, last_updated_time = {self.dialect.now} "
            f"WHERE id = ? AND {self.dialect.keyed('status')} IN (?, ?)",
            (TaskStatus.CANCELLED, task_id, *ACTIVE),
        )
        rows = self._query("SELECT status FROM download_task_main WHERE id = ?", (task_id,))
        if rows and rows[0]["status"] == TaskStatus.CANCELLED:
            with self._session() as session:
                self._mark_files_due(
                    session, "item_id IN (SELECT id FROM download_item WHERE task_id = ?)", [task_id]
                )
        return rows[0]["status"] if rows else None

    def count_download(
        self, item_id: int, limit: int | None, file_grace: float = 0.0
    ) -> tuple[bool, int, int] | None:
        """Count a download of a DONE item; at `limit` downloads the item is EXPIRED (and its
        task, if no file is left).  Returns (counted, status after, downloads), None if no item.

        One conditional UPDATE decides, so concurrent downloads (any process, any supervisor)
        never pass the limit; `status` is assigned first, as MySQL reads the columns it has
        already set.  The last download's file is deleted `file_grace` seconds later (a
        presigned url outlives this call).
        """
        d, keyed, times = self.dialect, self.dialect.keyed("status"), "COALESCE(download_times, 0)"
        limit = limit or 0
        last = f"? > 0 AND {times} + 1 >= ?"  # this download reaches the limit
        with self._transaction() as session:
            counted = session.execute(
                f"UPDATE download_item SET last_updated_time = CASE WHEN {last} THEN {d.now} "
                f"ELSE last_updated_time END, status = CASE WHEN {last} THEN ? ELSE status END, "
                f"download_times = {times} + 1 WHERE id = ? AND {keyed} = ? AND (? = 0 OR {times} < ?)",
                (limit, limit, limit, limit, ItemStatus.EXPIRED, item_id, ItemStatus.DONE, limit, limit),
            )
            found = session.query(
                "SELECT task_id, status, download_times FROM download_item WHERE id = ?", (item_id,)
            )
            if not found:
                return None
            downloads, status = found[0]["download_times"] or 0, found[0]["status"]
            if counted and status == ItemStatus.EXPIRED:
                self._expire_tasks(session, [found[0]["task_id"]])
                self._mark_files_due(session, "item_id = ?", [item_id], grace=file_grace)
        if counted and status == ItemStatus.EXPIRED:
            self._count([item_id], "expired")
        return bool(counted), status, downloads

    def download_of(self, item_id: int) -> dict[str, Any] | None:
        """What serving an item's file needs (never its data): the item, its task's sub_type
        and org, and the storage key the toolkit recorded."""
        rows = self._query(
            "SELECT i.id, i.task_id, i.status, i.file_name, i.expire_time, i.url, "
            "COALESCE(i.type, t.sub_type) AS sub_type, f.storage_key, f.deleted_time "
            "FROM download_item i LEFT JOIN download_task_main t ON t.id = i.task_id "
            "LEFT JOIN dlsupervisor_file f ON f.item_id = i.id WHERE i.id = ?",
            (item_id,),
        )
        return rows[0] if rows else None

    def web_tasks(
        self,
        org_id: int | None,
        status: int | None,
        sub_type: int | None,
        limit: int,
        task_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Tasks newest first (by primary key), optionally filtered, with their items (never
        the data columns: user blobs stay in the database) and their export progress: each
        item's own row (by primary key) and the task's sum from `task_progress`."""
        where, args = [], []
        for column, value in (
            ("id", task_id),
            ("org_id", org_id),
            ("status", status),
            ("sub_type", sub_type),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self._query(
            "SELECT id, org_id, task_name, sub_type, status, remark, created_time, last_updated_time "
            f"FROM download_task_main {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        ids = [row["id"] for row in rows]
        by_task: dict[int, list[dict[str, Any]]] = {task_id: [] for task_id in ids}
        for item in self._web_items(ids):
            by_task[item["task_id"]].append(item)
        sums = {row["task_id"]: progress_of(row) for row in self.task_progress(ids)}
        return [{**row, "items": by_task[row["id"]], "export_progress": sums.get(row["id"])} for row in rows]

    def _web_items(self, task_ids: Sequence[int]) -> list[dict[str, Any]]:
        """The tasks' items (by the task_id index), each with its progress row if it has one
        (`export_progress`: a Progress, None when the item never reported)."""
        if not task_ids:
            return []
        items = self._query(
            "SELECT i.id, i.task_id, i.status, i.file_name, i.url, i.download_times, i.expire_time, "
            "i.remark, p.done AS progress_done, p.total AS progress_total FROM download_item i "
            "LEFT JOIN dlsupervisor_progress p ON p.item_id = i.id "
            f"WHERE i.task_id IN ({marks(task_ids)}) ORDER BY i.id",
            task_ids,
        )
        for item in items:
            done, total = item.pop("progress_done"), item.pop("progress_total")
            item["export_progress"] = None if done is None else Progress(int(done), maybe_int(total))
        return items

    # -- worker ------------------------------------------------------------------------

    def claim(self, item_id: int, owner: str, sub_type: int, cap: int = 0) -> Claim | None:
        """Claim a READY item of a task not cancelled, served by `sub_type`, and read it back.

        With `cap` (max_per_org), only while fewer than `cap` items of its org run in
        `sub_type`: the org's lock row is taken first, so claims of one org, from any
        supervisor, count one after the other.  The count is the transaction's first
        plain read, made after the lock: it sees every claim committed before it.
        """
        org = self._query("SELECT org_id FROM download_item WHERE id = ?", (item_id,)) if cap else []
        with self._transaction() as session:
            return self._claim_in(session, item_id, owner, sub_type, cap, org)

    def _claim_in(
        self, session: Session, item_id: int, owner: str, sub_type: int, cap: int, org: list[dict[str, Any]]
    ) -> Claim | None:
        if org and self._running(session, sub_type, org[0]["org_id"]) >= cap:
            return None  # held back: the scheduler sends it again when the org has room
        session.execute(*claim_sql(self.dialect, item_id, owner, sub_type))
        rows = session.query("SELECT * FROM download_item WHERE id = ?", (item_id,))
        return claim_of(rows[0] if rows else None, owner)

    def _running(self, session: Session, sub_type: int, org_id: int) -> int:
        """Lock the org's slot row (creating it the first time), then count its running items."""
        key = (sub_type, org_id)
        where = "WHERE sub_type = ? AND org_id = ?"
        if not session.query(
            f"SELECT sub_type FROM dlsupervisor_org_slots {where}{self.dialect.for_update}", key
        ):
            session.execute(
                "INSERT INTO dlsupervisor_org_slots (sub_type, org_id) VALUES (?, ?) "
                + self.dialect.upsert("sub_type, org_id", ["sub_type"]),
                key,
            )
        rows = session.query(
            "SELECT COUNT(*) AS n FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
            "WHERE i.org_id = ? AND i.status = ? AND COALESCE(i.type, t.sub_type) = ?",
            (org_id, ItemStatus.PROCESSING, sub_type),
        )
        return int(rows[0]["n"])

    def record(self, item_id: int, token: str, outcome: Outcome, file_ttl: int, count: bool = True) -> bool:
        """The outcome, if the claim is still `token`'s; `count=False`: the caller counts it
        (a worker's CountBuffer), and the record is this one statement."""
        recorded = self._execute(*record_sql(self.dialect, item_id, token, outcome, file_ttl)) == 1
        if recorded and count:
            self._count([item_id], counters.outcome_name(outcome.status, outcome.remark), outcome.seconds)
        return recorded

    def record_and_claim(
        self, done: Recording, next_id: int, owner: str, sub_type: int, cap: int = 0
    ) -> tuple[bool, Claim | None]:
        """Record one outcome (uncounted: the caller counts it) and claim the next item, in
        one transaction: both or neither, so a retry after any failure is a clean retry."""
        org = self._query("SELECT org_id FROM download_item WHERE id = ?", (next_id,)) if cap else []
        with self._transaction() as session:
            recorded = session.execute(*record_sql(self.dialect, *done)) == 1
            claim = self._claim_in(session, next_id, owner, sub_type, cap, org)
        return recorded, claim

    def _count(self, item_ids: Sequence[int], outcome: str | None, seconds: float | None = None) -> None:
        """Add one outcome per item (and an export time) to the metrics' counters, by sub_type.

        After the outcome's own statement: a counter lost to an outage between the two is
        a metric off by one, never an outcome lost."""
        added = counters.increments(outcome, seconds)
        if not item_ids or not added:
            return
        try:
            self._add_counts(item_ids, added)
        except Exception as exc:  # noqa: BLE001 - a metric is never worth an outcome's retry
            log.warning("metrics: counters not updated (%s)", type(exc).__name__)

    def _add_counts(self, item_ids: Sequence[int], added: list[tuple[str, float]]) -> None:
        rows = self._query(
            "SELECT COALESCE(i.type, t.sub_type) AS sub_type, COUNT(*) AS n FROM download_item i "
            f"LEFT JOIN download_task_main t ON t.id = i.task_id WHERE i.id IN ({marks(item_ids)}) "
            "GROUP BY COALESCE(i.type, t.sub_type)",
            list(item_ids),
        )
        self.add_counts(
            [
                (
                    row["sub_type"] if row["sub_type"] is not None else -1,
                    name,
                    amount * (row["n"] if name.startswith("items:") else 1),
                )
                for row in rows
                for name, amount in added
            ]
        )

    def add_counts(self, values: Sequence[tuple[int, str, float]]) -> None:
        """Add (sub_type, name, amount) to the counters, in one statement."""
        if not values:
            return
        self._execute(
            "INSERT INTO dlsupervisor_counter (sub_type, name, value) VALUES "
            + ", ".join("(?, ?, ?)" for _ in values)
            + " "
            + self.dialect.accumulate("sub_type, name", "value"),
            [part for row in values for part in row],
        )

    def counter_values(self) -> list[dict[str, Any]]:
        """Every counter (a few per sub_type): /metrics reads them at scrape time."""
        return self._query("SELECT sub_type, name, value FROM dlsupervisor_counter")

    def active_counts(self) -> list[dict[str, Any]]:
        """READY and PROCESSING items per sub_type, and the oldest READY one's creation (active rows
        only, through the status index)."""
        return self._query(
            "SELECT COALESCE(i.type, t.sub_type) AS sub_type, i.status, COUNT(*) AS n, "
            "MIN(i.created_time) AS oldest FROM download_item i "
            "LEFT JOIN download_task_main t ON t.id = i.task_id WHERE i.status IN (?, ?) "
            "GROUP BY COALESCE(i.type, t.sub_type), i.status",
            ACTIVE,
        )

    def load_task(self, task_id: int) -> DownloadTaskMain | None:
        rows = self._query("SELECT * FROM download_task_main WHERE id = ?", (task_id,))
        return DownloadTaskMain(rows[0]) if rows else None

    def claim_split(self, task_id: int, token: str, lease: float) -> bool:
        d = self.dialect
        return (
            self._execute(
                f"UPDATE download_task_main SET remark = ?, last_updated_time = {d.now} "
                f"WHERE id = ? AND {d.keyed('status')} = ? AND (remark IS NULL OR remark = ? "
                f"OR remark NOT LIKE ? OR last_updated_time < {d.now_plus})",
                (token, task_id, TaskStatus.READY, token, remarks.split_claims(), d.seconds(-lease)),
            )
            == 1
        )

    def commit_split(self, task_id: int, token: str, items: Sequence[DownloadItem]) -> SplitCommit | None:
        """All or nothing: the task becomes PROCESSING together with its items.

        A task that already has items keeps them and gets none of these: a split
        is idempotent.  The count and the read-back share the transaction's view
        (MySQL's snapshot, SQLite's write lock), so the ids read back are exactly
        the rows inserted.  The count takes no row lock: a gap lock there would
        deadlock two splits committing at once.
        """
        d = self.dialect
        with self._transaction() as session:
            moved = session.execute(
                "UPDATE download_task_main SET status = ?, remark = NULL, "
                f"last_updated_time = {d.now} WHERE id = ? AND {d.keyed('status')} = ? AND remark = ?",
                (TaskStatus.PROCESSING, task_id, TaskStatus.READY, token),
            )
            if moved != 1:
                return None  # nothing written
            count = session.query("SELECT COUNT(*) AS n FROM download_item WHERE task_id = ?", (task_id,))
            if count[0]["n"]:
                return SplitCommit([], int(count[0]["n"]))
            session.executemany(
                f"INSERT INTO download_item ({', '.join(ITEM_INSERT_COLUMNS)}) "
                f"VALUES ({marks(ITEM_INSERT_COLUMNS)})",
                [[getattr(item, c) for c in ITEM_INSERT_COLUMNS] for item in items],
            )
            rows = session.query("SELECT id FROM download_item WHERE task_id = ? ORDER BY id", (task_id,))
            return SplitCommit([row["id"] for row in rows], 0)

    def fail_task(self, task_id: int, remark: str, token: str | None = None) -> bool:
        return (
            self._execute(
                "UPDATE download_task_main SET status = ?, remark = ?, "
                f"last_updated_time = {self.dialect.now} "
                f"WHERE id = ? AND {self.dialect.keyed('status')} = ? AND (? IS NULL OR remark = ?)",
                (TaskStatus.FAILED, remark, task_id, TaskStatus.READY, token, token),
            )
            == 1
        )

    def ready_items(self, sub_type: int, limit: int, cap: int = 0) -> list[int]:
        """READY items of PROCESSING tasks served by `sub_type`: what a polling worker may take,
        pinned first, then the orgs running least (each poll ranks afresh: an org's running
        items count as its places taken), with `cap` only what orgs have room for."""
        rows = self._query(
            ranked_ready_sql(
                "COALESCE(i.type, t.sub_type) = ?", f"r.task_status = ? AND {ROOM}", f"r.pos + {RUNNING}"
            ),
            ranked_args(
                sub_type,
                TaskStatus.PROCESSING,
                *room_args(sub_type, cap),
                ItemStatus.PROCESSING,
                sub_type,
                limit,
            ),
        )
        return [row["id"] for row in rows]

    def open_items(self, sub_type: int, cap: int, limit: int) -> list[ItemRef]:
        """READY items (of PROCESSING tasks) in the fair order; with `cap`, only those orgs
        under it may start now: at most their room each, first in their lines (the scheduler
        sends these each pass for a capped subtype: held-back items wait here, not queued)."""
        rows = self._query(
            ranked_ready_sql("COALESCE(i.type, t.sub_type) = ?", f"r.task_status = ? AND {ROOM}"),
            ranked_args(sub_type, TaskStatus.PROCESSING, *room_args(sub_type, cap), limit),
        )
        return item_refs(rows)

    # -- completion notices (worker.py delivers them) -------------------------------------

    def due_notices(self, sub_type: int, notify_for: float, limit: int) -> list[NoticeRef]:
        """Pending notices of a subtype whose next try is due, soonest first (by the
        (sub_type, state, next_try) index: delivered ones are never read)."""
        d = self.dialect
        rows = self._query(
            "SELECT task_id, kind, status, attempts, "
            f"CASE WHEN created_time < {d.now_plus} THEN 1 ELSE 0 END AS overdue FROM dlsupervisor_notice "
            f"WHERE sub_type = ? AND state = ? AND next_try <= {d.now} ORDER BY next_try LIMIT ?",
            (d.seconds(-notify_for), sub_type, NoticeState.PENDING, limit),
        )
        return notice_refs(rows)

    def claim_notice(self, notice: NoticeRef, hold: float) -> bool:
        """Take a due notice for `hold` seconds (a worker that dies holding it lets it come
        due again then); conditional on the attempts it was read with."""
        d = self.dialect
        return (
            self._execute(
                f"UPDATE dlsupervisor_notice SET attempts = attempts + 1, next_try = {d.now_plus} "
                f"WHERE task_id = ? AND kind = ? AND state = ? AND attempts = ? AND next_try <= {d.now}",
                (d.seconds(hold), notice.task_id, notice.kind, NoticeState.PENDING, notice.attempts),
            )
            == 1
        )

    def finish_notice(
        self, notice: NoticeRef, attempts: int, state: int, error: str | None, retry_in: float = 0
    ) -> bool:
        """Record a notice's end or try, conditional on its `attempts` (after a claim: one more
        than read): delivered, given up, not applicable, or PENDING again in `retry_in` s."""
        d = self.dialect
        return (
            self._execute(
                f"UPDATE dlsupervisor_notice SET state = ?, last_error = ?, next_try = {d.now_plus}, "
                f"delivered_time = CASE WHEN ? = ? THEN {d.now} ELSE NULL END "
                "WHERE task_id = ? AND kind = ? AND state = ? AND attempts = ?",
                (
                    state,
                    error,
                    d.seconds(retry_in),
                    state,
                    NoticeState.DELIVERED,
                    notice.task_id,
                    notice.kind,
                    NoticeState.PENDING,
                    attempts,
                ),
            )
            == 1
        )

    def notice_items(self, task_id: int) -> list[dict[str, Any]]:
        """A finished task's items as a notice lists them."""
        return self._query(
            "SELECT id, file_name, url, md5_value AS md5 FROM download_item WHERE task_id = ? ORDER BY id",
            (task_id,),
        )

    # -- registry (registry.DatabaseRegistry) --------------------------------------------

    def register(self, reg: Registration) -> None:
        names = ", ".join([*REGISTRATION_COLUMNS, "seen_time"])
        self._execute(
            f"INSERT INTO dlsupervisor_subtype ({names}) VALUES (?, ?, ?, ?, ?, {self.dialect.now}) "
            + self.dialect.upsert("sub_type", [*REGISTRATION_COLUMNS[1:], "seen_time"]),
            (reg.sub_type, reg.name, reg.type, reg.queue_key, int(reg.multi)),
        )

    def registrations(self, max_age: float) -> list[Registration]:
        rows = self._query(
            f"SELECT {', '.join(REGISTRATION_COLUMNS)} FROM dlsupervisor_subtype "
            f"WHERE seen_time > {self.dialect.now_plus}",
            (self.dialect.seconds(-max_age),),
        )
        return [
            Registration(r["name"], r["type"], r["sub_type"], r["queue_key"], bool(r["multi"])) for r in rows
        ]

    # -- scheduler ---------------------------------------------------------------------

    def _due_sql(self) -> str:
        """EXISTS of a DONE item due to expire (one parameter: `seconds(-file_ttl)`), then two
        status parameters (DONE, DONE)."""
        d = self.dialect
        return (
            f"EXISTS (SELECT 1 FROM download_item WHERE status = ? AND expire_time < {d.whole_now}) "
            "OR EXISTS (SELECT 1 FROM download_item WHERE status = ? AND expire_time IS NULL "
            f"AND last_updated_time < {d.now_plus})"
        )

    def has_work(self, file_ttl: int, files: bool = False) -> bool:
        """Whether a pass could change anything: an active task or item, a file due to expire,
        or (`files`) a stored file due for deletion."""
        deletions = f" OR EXISTS ({FILES_DUE.format(now=self.dialect.now)})" if files else ""
        rows = self._query(
            "SELECT EXISTS (SELECT 1 FROM download_task_main WHERE status IN (?, ?)) "
            f"OR EXISTS (SELECT 1 FROM download_item WHERE status IN (?, ?)) OR {self._due_sql()}"
            f"{deletions} AS busy",
            (*ACTIVE, *ACTIVE, ItemStatus.DONE, ItemStatus.DONE, self.dialect.seconds(-file_ttl)),
        )
        return bool(rows[0]["busy"])

    def dispatchable_items(self, sub_types: Sequence[int], limit: int) -> list[ItemRef]:
        """READY items of READY tasks of single-item subtypes, pinned first, then round-robin
        across orgs (each item's place counts its org's READY items already dispatched).

        The rank reads every waiting item of the subtypes, so it runs only when a READY task
        exists (by the status index): a backlog queued by submit() costs a pass nothing."""
        if not sub_types:
            return []
        if not self._query(
            "SELECT 1 AS ready FROM download_task_main "
            f"WHERE status = ? AND sub_type IN ({marks(sub_types)}) LIMIT 1",
            (TaskStatus.READY, *sub_types),
        ):
            return []
        rows = self._query(
            ranked_ready_sql(f"t.sub_type IN ({marks(sub_types)})", "r.task_status = ?"),
            ranked_args(*sub_types, TaskStatus.READY, limit),
        )
        return item_refs(rows)

    def mark_tasks_processing(self, task_ids: Iterable[int]) -> int:
        ids = tuple(task_ids)
        if not ids:
            return 0
        return self._execute(
            f"UPDATE download_task_main SET status = ?, last_updated_time = {self.dialect.now} "
            f"WHERE id IN ({marks(ids)}) AND {self.dialect.keyed('status')} = ?",
            (TaskStatus.PROCESSING, *ids, TaskStatus.READY),
        )

    def splittable_tasks(self, sub_types: Sequence[int], lease: float, limit: int) -> list[tuple[int, int]]:
        """READY multi-item tasks not being split (or whose splitter went silent)."""
        if not sub_types:
            return []
        rows = self._query(
            "SELECT id, sub_type FROM download_task_main "
            f"WHERE status = ? AND sub_type IN ({marks(sub_types)}) AND (remark IS NULL "
            f"OR remark NOT LIKE ? OR last_updated_time < {self.dialect.now_plus}) ORDER BY id LIMIT ?",
            (TaskStatus.READY, *sub_types, remarks.split_claims(), self.dialect.seconds(-lease), limit),
        )
        return [(r["id"], r["sub_type"]) for r in rows]

    def unserved_subtypes(self, served: Sequence[int]) -> list[int]:
        sql = "SELECT DISTINCT sub_type FROM download_task_main WHERE status = ?"
        if served:
            sql += f" AND sub_type NOT IN ({marks(served)})"
        rows = self._query(sql, (TaskStatus.READY, *served))
        return sorted(r["sub_type"] for r in rows)

    def stale_ready_items(self, age: float, limit: int) -> list[ItemRef]:
        """READY items of PROCESSING tasks waiting longer than `age`: their wake-up was lost
        (each with its place in its org's line among these: only waiting rows are read)."""
        rows = self._query(
            ranked_ready_sql(f"i.last_updated_time < {self.dialect.now_plus}", "r.task_status = ?"),
            ranked_args(self.dialect.seconds(-age), TaskStatus.PROCESSING, limit),
        )
        return item_refs(rows)

    def ranked_items(self, item_ids: Sequence[int]) -> list[ItemRef]:
        """These READY items with their places in their orgs' lines (a split's new items)."""
        if not item_ids:
            return []
        rows = self._query(
            ranked_ready_sql(
                f"i.org_id IN (SELECT org_id FROM download_item WHERE id IN ({marks(item_ids)}))",
                f"r.id IN ({marks(item_ids)})",
            ),
            ranked_args(*item_ids, *item_ids, len(item_ids)),
        )
        return item_refs(rows)

    def fail_items(self, item_ids: Iterable[int], remark: str) -> int:
        ids = tuple(item_ids)
        if not ids:
            return 0
        return self._execute(
            f"UPDATE download_item SET status = ?, remark = ?, last_updated_time = {self.dialect.now} "
            f"WHERE id IN ({marks(ids)}) AND {self.dialect.keyed('status')} = ?",
            (ItemStatus.FAILED, remark, *ids, ItemStatus.READY),
        )

    def cancel_items(self) -> int:
        """READY and PROCESSING items of cancelled tasks become CANCELLED.

        Driven from the active items (status index), each checked against its task
        by primary key: cancelled tasks pile up forever, active items do not.
        """
        return self._execute(
            f"UPDATE download_item SET status = ?, remark = ?, last_updated_time = {self.dialect.now} "
            "WHERE status IN (?, ?) AND EXISTS (SELECT 1 FROM download_task_main t "
            "WHERE t.id = download_item.task_id AND t.status = ?)",
            (ItemStatus.CANCELLED, remarks.CANCELLED, *ACTIVE, TaskStatus.CANCELLED),
        )

    def finished_tasks(self, limit: int) -> list[Tally]:
        rows = self._query(
            "SELECT c.*, (SELECT remark FROM download_item WHERE id = c.first_failed) AS failure "
            "FROM (SELECT i.task_id, COUNT(*) AS total, SUM(i.status = ?) AS done, "
            "SUM(i.status = ?) AS failed, SUM(i.status = ?) AS expired, "
            "SUM(i.status IN (?, ?)) AS active, "
            "MIN(CASE WHEN i.status = ? THEN i.id END) AS first_failed "
            "FROM download_task_main t JOIN download_item i ON i.task_id = t.id "
            "WHERE t.status = ? GROUP BY i.task_id) c WHERE c.active = 0 "
            "ORDER BY c.task_id LIMIT ?",
            (
                ItemStatus.DONE,
                ItemStatus.FAILED,
                ItemStatus.EXPIRED,
                *ACTIVE,
                ItemStatus.FAILED,
                TaskStatus.PROCESSING,
                limit,
            ),
        )
        return tallies(rows)

    def close_tasks(self, decisions: Sequence[Decision]) -> int:
        """Finish PROCESSING tasks: [(task_id, status, remark)], and create the completion
        notices of those with `notify = 1`, in one transaction (a crash loses none).

        One statement per status for the tasks closing with no remark, one for the rest.
        """
        now, keyed = self.dialect.now, self.dialect.keyed("status")
        plain, remarked = split_closures(decisions)
        closed = 0
        with self._transaction() as session:
            for status, ids in plain.items():
                closed += session.execute(
                    f"UPDATE download_task_main SET status = ?, remark = NULL, last_updated_time = {now} "
                    f"WHERE id IN ({marks(ids)}) AND {keyed} = ?",
                    (status, *ids, TaskStatus.PROCESSING),
                )
            if remarked:
                cases = " ".join(["WHEN ? THEN ?"] * len(remarked))
                ids = [task_id for task_id, _, _ in remarked]
                closed += session.execute(
                    f"UPDATE download_task_main SET status = CASE id {cases} END, "
                    f"remark = CASE id {cases} END, last_updated_time = {now} "
                    f"WHERE id IN ({marks(ids)}) AND {keyed} = ?",
                    (*_case_args(remarked), *ids, TaskStatus.PROCESSING),
                )
            self._create_notices(session, [task_id for task_id, _, _ in decisions])
        return closed

    def _create_notices(self, session: Session, task_ids: list[int]) -> None:
        """A notice of each kind for the tasks among these that closed DONE or FAILED with
        `notify = 1`; a notice already there is kept (its key is (task_id, kind)).  Read by
        primary key first, so the seed's scripts, which never set `notify`, need no new table."""
        if not task_ids:
            return
        d = self.dialect
        notifying = session.query(
            f"SELECT id FROM download_task_main WHERE id IN ({marks(task_ids)}) AND notify = ?",
            (*task_ids, 1),
        )
        task_ids = [row["id"] for row in notifying]
        if not task_ids:
            return
        for kind in NOTICE_KINDS:
            session.execute(
                "INSERT INTO dlsupervisor_notice (task_id, kind, sub_type, status, next_try) "
                f"SELECT id, ?, sub_type, status, {d.now} FROM download_task_main "
                f"WHERE id IN ({marks(task_ids)}) AND {d.keyed('status')} IN (?, ?) AND notify = ? "
                + d.upsert("task_id, kind", ["task_id"]),
                (kind, *task_ids, TaskStatus.DONE, TaskStatus.FAILED, 1),
            )

    def expire(self, file_ttl: int, limit: int) -> tuple[int, int]:
        """DONE items past expire_time become EXPIRED, and so do tasks left with no DONE item.

        One transaction, so a crash never leaves a task DONE with only expired files,
        opened (taking locks) only when one read says something is due (most passes:
        nothing is).  Items the application left with no expire_time expire file_ttl
        after they finished.
        """
        d, done = self.dialect, ItemStatus.DONE
        due = self._query(f"SELECT {self._due_sql()} AS due", (done, done, d.seconds(-file_ttl)))
        if not due[0]["due"]:
            return 0, 0
        with self._transaction() as session:
            rows = session.query(
                f"SELECT id, task_id FROM download_item WHERE status = ? AND expire_time < {d.whole_now} "
                f"ORDER BY expire_time LIMIT ?{d.for_update}",
                (done, limit),
            )
            rows += session.query(
                "SELECT id, task_id FROM download_item WHERE status = ? AND expire_time IS NULL "
                f"AND last_updated_time < {d.now_plus} ORDER BY last_updated_time LIMIT ?{d.for_update}",
                (done, d.seconds(-file_ttl), limit),
            )
            if not rows:
                return 0, 0
            item_ids = [r["id"] for r in rows]
            items = session.execute(
                f"UPDATE download_item SET status = ?, last_updated_time = {d.now} "
                f"WHERE id IN ({marks(item_ids)}) AND {d.keyed('status')} = ?",
                (ItemStatus.EXPIRED, *item_ids, done),
            )
            tasks = self._expire_tasks(session, sorted({r["task_id"] for r in rows}))
        self._count(item_ids, "expired")
        return items, tasks

    def _expire_tasks(self, session: Session, task_ids: list[int]) -> int:
        """DONE tasks among these with no DONE item left become EXPIRED."""
        d = self.dialect
        return session.execute(
            f"UPDATE download_task_main SET status = ?, last_updated_time = {d.now} "
            f"WHERE id IN ({marks(task_ids)}) AND {d.keyed('status')} = ? AND NOT EXISTS "
            "(SELECT 1 FROM download_item i WHERE i.task_id = download_task_main.id "
            f"AND {d.keyed('i.status')} = ?)",
            (TaskStatus.EXPIRED, *task_ids, TaskStatus.DONE, ItemStatus.DONE),
        )

    def orphans(self, lease: float, limit: int) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT id, remark FROM download_item WHERE status = ? "
            f"AND last_updated_time < {self.dialect.now_plus} ORDER BY last_updated_time LIMIT ?",
            (ItemStatus.PROCESSING, self.dialect.seconds(-lease), limit),
        )
        return [(r["id"], r["remark"]) for r in rows]

    def requeue(self, item_id: int, token: str, status: int, remark: str, lease: float | None) -> bool:
        """Take an item back from its owner (READY, or FAILED at the attempt limit).

        With `lease`, only if its heartbeat is still older than that: a heartbeat
        that lands first wins.
        """
        d = self.dialect
        sql = (
            f"UPDATE download_item SET status = ?, remark = ?, last_updated_time = {d.now} "
            f"WHERE id = ? AND {d.keyed('status')} = ? AND remark {d.null_safe_eq} ?"
        )
        args: list[Any] = [status, remark, item_id, ItemStatus.PROCESSING, token]
        if lease is not None:
            sql += f" AND last_updated_time < {d.now_plus}"
            args.append(d.seconds(-lease))
        taken = self._execute(sql, args) == 1
        if taken:
            self._count([item_id], counters.outcome_name(status, remark))
        return taken

    # -- stored files (the toolkit records them, the scheduler deletes them) ------------

    def _files_due_now_sql(
        self, condition: str, args: list[Any], grace: float = 0.0
    ) -> tuple[str, list[Any]]:
        """Make the not yet deleted files matching `condition` due for deletion `grace` s from now."""
        d = self.dialect
        return (
            f"UPDATE dlsupervisor_file SET next_try = {d.now_plus} "
            f"WHERE deleted_time IS NULL AND {condition}",
            [d.seconds(grace), *args],
        )

    def _mark_files_due(self, session: Session, condition: str, args: list[Any], grace: float = 0.0) -> None:
        """Due for deletion; without the table (initdb not rerun) there is nothing to mark."""
        try:
            session.execute(*self._files_due_now_sql(condition, args, grace))
        except StoreUnavailable:
            raise
        except Exception:  # the backend's "no such table", raised as is
            pass

    def files_table(self) -> bool:
        """Whether initdb has created dlsupervisor_file (an upgrade may not have rerun it yet)."""
        try:
            self._query("SELECT 1 FROM dlsupervisor_file WHERE 1 = 0")
        except StoreUnavailable:
            raise
        except Exception:  # the backend's "no such table", raised as is
            return False
        return True

    def record_file(self, item_id: int, key: str, file_ttl: int) -> None:
        """Before a file is put: due for deletion at its item's expiry (expire_time, or file_ttl)."""
        d = self.dialect
        self._execute(
            f"INSERT INTO dlsupervisor_file (item_id, {', '.join(FILE_COLUMNS)}) VALUES (?, ?, {d.now}, "
            f"COALESCE((SELECT expire_time FROM download_item WHERE id = ?), {d.whole_now_plus}), 0, NULL) "
            + d.upsert("item_id", FILE_COLUMNS),
            (item_id, key, item_id, d.seconds(file_ttl)),
        )

    def files_due(self, limit: int) -> list[DueFile]:
        """Files due for deletion, with their item's and task's status (None: row gone)."""
        rows = self._query(
            "SELECT f.item_id, f.storage_key, f.attempts, i.status AS item_status, "
            "t.status AS task_status FROM dlsupervisor_file f LEFT JOIN download_item i ON i.id = f.item_id "
            "LEFT JOIN download_task_main t ON t.id = i.task_id "
            f"WHERE f.deleted_time IS NULL AND f.next_try <= {self.dialect.now} ORDER BY f.next_try LIMIT ?",
            (limit,),
        )
        return [
            DueFile(r["item_id"], r["storage_key"], r["attempts"], r["item_status"], r["task_status"])
            for r in rows
        ]

    def files_deleted(self, item_ids: Sequence[int]) -> int:
        if not item_ids:
            return 0
        return self._execute(
            f"UPDATE dlsupervisor_file SET deleted_time = {self.dialect.now}, next_try = NULL "
            f"WHERE item_id IN ({marks(item_ids)}) AND deleted_time IS NULL",
            tuple(item_ids),
        )

    def files_later(self, item_ids: Sequence[int], delay: float, failed: bool) -> int:
        """Due again in `delay` seconds; `failed` counts an attempt (the storage was down)."""
        if not item_ids:
            return 0
        attempts = "attempts + 1" if failed else "attempts"
        return self._execute(
            f"UPDATE dlsupervisor_file SET attempts = {attempts}, next_try = {self.dialect.now_plus} "
            f"WHERE item_id IN ({marks(item_ids)}) AND deleted_time IS NULL",
            (self.dialect.seconds(delay), *item_ids),
        )

    def mark_cancelled_files(self) -> int:
        """Files of cancelled tasks that still have active items: due now.  Driven from the
        active items (as cancel_items), so cancelled history is never read."""
        return self._execute(
            *self._files_due_now_sql(
                "item_id IN (SELECT c.id FROM download_item c WHERE c.task_id IN (SELECT i.task_id "
                "FROM download_item i JOIN download_task_main t ON t.id = i.task_id "
                "WHERE i.status IN (?, ?) AND t.status = ?))",
                [*ACTIVE, TaskStatus.CANCELLED],
            )
        )

    # -- master ------------------------------------------------------------------------

    def heartbeat(self, item_ids: Sequence[int], task_ids: Sequence[int]) -> None:
        d = self.dialect
        for table, ids, status in (
            ("download_item", item_ids, ItemStatus.PROCESSING),
            ("download_task_main", task_ids, TaskStatus.READY),
        ):
            if ids:
                self._execute(
                    f"UPDATE {table} SET last_updated_time = {d.now} "
                    f"WHERE id IN ({marks(ids)}) AND {d.keyed('status')} = ?",
                    (*ids, status),
                )

    def write_progress(self, reports: Sequence[ProgressReport]) -> None:
        """The master's once-a-second write of its exports' progress: one upsert per item,
        only while the item is PROCESSING (a late report never touches a finished item)."""
        if not reports:
            return
        d = self.dialect
        sql = (
            "INSERT INTO dlsupervisor_progress (item_id, task_id, done, total, updated_time) "
            f"SELECT id, task_id, ?, ?, {d.now} FROM download_item WHERE id = ? AND {d.keyed('status')} = ? "
            + d.upsert("item_id", ["task_id", "done", "total", "updated_time"])
        )
        with self._transaction() as session:
            session.executemany(sql, [(r.done, r.total, r.item_id, ItemStatus.PROCESSING) for r in reports])

    def held_states(self, item_ids: Sequence[int]) -> dict[int, tuple[int, str | None, int | None]]:
        """item id -> (status, remark, its task's status), for the items a master's workers hold."""
        if not item_ids:
            return {}
        rows = self._query(
            "SELECT i.id, i.status, i.remark, t.status AS task_status FROM download_item i "
            f"LEFT JOIN download_task_main t ON t.id = i.task_id WHERE i.id IN ({marks(item_ids)})",
            tuple(item_ids),
        )
        return {r["id"]: (r["status"], r["remark"], r["task_status"]) for r in rows}

    def release_split(self, task_id: int, token: str) -> bool:
        """Give back a split claim (the supervisor stopped mid-split): the task stays READY."""
        return (
            self._execute(
                f"UPDATE download_task_main SET remark = NULL, last_updated_time = {self.dialect.now} "
                f"WHERE id = ? AND {self.dialect.keyed('status')} = ? AND remark = ?",
                (task_id, TaskStatus.READY, token),
            )
            == 1
        )
