"""The one SQL store over each dialect: parameterised statements that spell no status or remark."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
import pytest

from dlsupervisor import remarks
from dlsupervisor.model import DownloadItem, DownloadTaskMain
from dlsupervisor.registry import Registration
from dlsupervisor.store import Outcome, mysql, sqlite
from dlsupervisor.store.sql import Dialect, Failure, SqlStore

LITERAL = re.compile(r"status\s*(=|<>|!=|IN)\s*\(?\s*-?\d")  # a status number where a parameter belongs


class Row(dict):
    """Any column a statement's caller reads: 1, or no remark."""

    def __missing__(self, key: str) -> Any:
        return None if key == "remark" else 1


class Recorder:
    """A session that records each statement and answers every query with one Row."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        self.statements.append((sql, tuple(args)))
        return 1

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.statements.append((sql, tuple(args)))
        return [Row()]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.statements.append((sql, tuple(row)))

    def insert(self, sql: str, args: Sequence[Any]) -> int:
        self.statements.append((sql, tuple(args)))
        return 1


class RecordingStore(SqlStore):
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.session = Recorder()

    @contextlib.contextmanager
    def _session(self) -> Iterator[Recorder]:
        yield self.session

    _transaction = _session


def _exercise(store: SqlStore) -> None:
    item = DownloadItem(org_id=1, type=15, data="{}")
    store.submit(DownloadTaskMain(org_id=1, platform=1, type=10, sub_type=15, data="{}"), item)
    store.list_tasks(None, 5)
    store.cancel_task(1)
    store.count_download(1, 3)
    store.claim(1, "host:1", 15)
    store.claim(1, "host:1", 15, 2)
    store.ranked_items([1, 2])
    store.open_items(15, 2, 10)
    store.record(1, "t", Outcome(2, url="u", md5="m", file_name="f"), 60)
    store.record(1, "t", Outcome(-1, "bad"), 60)
    store.load_task(1)
    store.claim_split(1, "t", 30)
    store.commit_split(1, "t", [item])
    store.fail_task(1, "bad", "t")
    store.ready_items(15, 8)
    store.ready_items(15, 8, 2)
    store.register(Registration("n", 10, 15, "q", False))
    store.registrations(30)
    store.has_work(60)
    store.dispatchable_items([15, 16], 10)
    store.mark_tasks_processing([1, 2])
    store.splittable_tasks([16], 30, 10)
    store.unserved_subtypes([15])
    store.stale_ready_items(10, 10)
    store.fail_items([1], "bad")
    store.cancel_items()
    store.finished_tasks(10)
    store.close_tasks([(1, 2, None), (2, -1, "bad")])
    store.expire(60, 10)
    store.orphans(30, 10)
    store.requeue(1, "t", 0, "requeued: x (attempt 1 of 3)", 30)
    store.heartbeat([1], [2])
    store.held_states([1])
    store.release_split(1, "t")


@pytest.mark.parametrize("dialect", [mysql.MYSQL, sqlite.SQLITE], ids=["mysql", "sqlite"])
def test_every_statement_takes_its_statuses_and_remarks_as_parameters(dialect):
    store = RecordingStore(dialect)
    _exercise(store)
    assert len(store.session.statements) > 30
    for sql, args in store.session.statements:
        assert sql.count("?") == len(args), sql
        assert not LITERAL.search(sql), sql
        for text in (remarks.RUNNING_ON, remarks.SPLITTING_ON, remarks.REQUEUED, remarks.CANCELLED):
            assert text.strip() not in sql, sql


def test_the_dialects_spell_time_shifts_and_upserts_their_own_way():
    assert mysql.MYSQL.seconds(-5) == -5 and sqlite.SQLITE.seconds(-5) == "-5.000 seconds"
    assert mysql.MYSQL.keyed("status") == "status" and sqlite.SQLITE.keyed("i.status") == "+i.status"
    assert mysql.MYSQL.upsert("k", ["a"]) == "ON DUPLICATE KEY UPDATE a = VALUES(a)"
    assert sqlite.SQLITE.upsert("k", ["a"]) == "ON CONFLICT (k) DO UPDATE SET a = excluded.a"
    assert mysql._sql("a = ? AND b IN (?, ?)") == "a = %s AND b IN (%s, %s)"


def test_mysql_errors_fall_in_three_classes():
    def error(code: int) -> pymysql.err.MySQLError:
        return pymysql.err.OperationalError(code, "x")

    assert mysql.classify(error(2013)) is Failure.OUTAGE  # lost connection
    assert mysql.classify(error(1290)) is Failure.OUTAGE  # read-only: an outage of writes
    assert mysql.classify(error(1836)) is Failure.OUTAGE
    assert mysql.classify(error(1213)) is Failure.ROLLED_BACK  # deadlock
    assert mysql.classify(error(1142)) is Failure.BUG  # lost privilege: an operator must act
    assert mysql.classify(pymysql.err.ProgrammingError(1064, "syntax")) is Failure.BUG
    assert mysql.classify(pymysql.err.InterfaceError("closed")) is Failure.OUTAGE


def test_mysqlclient_errors_fall_in_the_same_three_classes():
    mysqldb = pytest.importorskip("MySQLdb")

    def error(code: int) -> Exception:
        return mysqldb.OperationalError(code, "x")

    assert mysql.classify(error(2013), mysqldb) is Failure.OUTAGE
    assert mysql.classify(error(2006), mysqldb) is Failure.OUTAGE
    assert mysql.classify(error(2002), mysqldb) is Failure.OUTAGE  # can't connect, as it says it
    assert mysql.classify(error(2005), mysqldb) is Failure.OUTAGE  # unknown host (a DNS outage too)
    assert mysql.classify(error(1290), mysqldb) is Failure.OUTAGE
    assert mysql.classify(error(1213), mysqldb) is Failure.ROLLED_BACK
    assert mysql.classify(error(1142), mysqldb) is Failure.BUG
    assert mysql.classify(mysqldb.IntegrityError(1364, "no default"), mysqldb) is Failure.BUG
    assert mysql.classify(mysqldb.InterfaceError(0, ""), mysqldb) is Failure.OUTAGE
    assert mysql.classify(error(2013)) is Failure.BUG  # not PyMySQL's: a bug, never a retry


def test_sqlite_errors_fall_in_three_classes():
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    readonly.sqlite_errorcode = 8
    assert sqlite.classify(busy) is Failure.ROLLED_BACK
    assert sqlite.classify(readonly) is Failure.OUTAGE
    assert sqlite.classify(sqlite3.OperationalError("no such table: x")) is Failure.BUG


class Empty(Recorder):
    """A session whose every query finds nothing."""

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        super().query(sql, args)
        return []


def test_a_pass_with_no_ready_task_skips_the_rank_of_the_waiting_items():
    """The dispatch rank reads every waiting item (a submit()-fed backlog: PROCESSING tasks),
    so it runs only when a READY task exists (bench/fairness.py measured a pass)."""
    store = RecordingStore(mysql.MYSQL)
    store.session = Empty()
    assert store.dispatchable_items([15, 16], 10) == []
    [(sql, args)] = store.session.statements
    assert "ROW_NUMBER" not in sql and "LIMIT 1" in sql and args[1:] == (15, 16)
