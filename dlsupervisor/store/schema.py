"""Is the database ready for dlsupervisor?  Checked before a command uses it.

Without this check a database lacking the tables shows up late and badly: a driver
traceback in `submit`, a scheduler crash-looping under `start`.  Every command but
`initdb` asks here first and gets one line naming what is missing and what to run.
On SQLite, `start` and `submit` create the file and tables themselves through the
store's own `initdb`, so an embedded first run needs no extra step.

What is expected is read from the DDL `initdb` runs (schema.sql, schema_sqlite.sql),
so the check cannot drift from it.  What is there is read over a short connection
of its own, read-only, so a bad URL or password is told apart from a server that is
down: the first is a configuration problem (exit 2), the second may pass (exit 1,
and `start` waits for it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import quote

import pymysql
from pymysql.constants.CR import CR_SSL_CONNECTION_ERROR

from dlsupervisor.config import DatabaseSettings, Settings
from dlsupervisor.connections import mysql_connect, tls_cause
from dlsupervisor.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    import sqlite3  # imported where used: `start` on MySQL never loads SQLite's library

# The DDL initdb runs, per dialect, as (package, resource).
DDL_FILES = MappingProxyType(
    {"mysql": ("dlsupervisor", "schema.sql"), "sqlite": ("dlsupervisor.store", "schema_sqlite.sql")}
)

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS `?(\w+)`? \((.*?)\n\)", re.S)
_INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS `?(\w+)`? ON `?(\w+)`?")
_FIRST_WORD = re.compile(r"^\s*`?(\w+)`?\s", re.M)
_NOT_COLUMNS = frozenset({"PRIMARY", "KEY", "UNIQUE", "INDEX", "CONSTRAINT", "FOREIGN", "FULLTEXT"})

# Server errors that mean the URL itself is wrong, not that the server is away for now.
_ACCESS_DENIED = frozenset({1044, 1045, 1698})  # to the database, for the user, by unix socket
_UNKNOWN_DATABASE = 1049
_SQLITE_NOTADB = 26

_COLUMNS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS"
    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN ({})"
)
_INDEXES_SQL = (
    "SELECT DISTINCT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS"
    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN ({})"
)


@dataclass(frozen=True)
class Schema:
    """Tables with their columns (in DDL order), and indexes as (table, index)."""

    columns: Mapping[str, tuple[str, ...]]
    indexes: frozenset[tuple[str, str]]


def parse(ddl: str) -> Schema:
    """The tables, columns and `CREATE INDEX` indexes a DDL script creates.

    Only `CREATE INDEX` ones: those are the indexes dlsupervisor adds and `initdb`
    can add to an existing table (a MySQL table's own KEYs are the seed's).
    """
    text = "\n".join(line for line in ddl.splitlines() if not line.lstrip().startswith("--"))
    columns = {
        table: tuple(w for w in _FIRST_WORD.findall(body) if w.upper() not in _NOT_COLUMNS)
        for table, body in _TABLE.findall(text)
    }
    return Schema(columns, frozenset((table, index) for index, table in _INDEX.findall(text)))


def expected(kind: str) -> Schema:
    """What `initdb` creates on this dialect ("mysql" or "sqlite")."""
    package, name = DDL_FILES[kind]
    return parse(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def problem(settings: Settings) -> str | None:
    """One line naming what the database lacks and what to run, or None when it is ready.

    Raises ConfigError for a URL that cannot work, StoreUnavailable for a server away.
    """
    db = settings.database
    if db.kind == "sqlite" and not os.path.exists(db.path):
        return (
            f"database {os.path.abspath(db.path)} does not exist; "
            f"run: dlsupervisor initdb -c {settings.path} (start and submit create it too)"
        )
    want = expected(db.kind)
    tables = list(want.columns)
    have = _found_sqlite(db, tables) if db.kind == "sqlite" else _found_mysql(db, tables)
    return describe(want, have, settings)


def verify(settings: Settings) -> None:
    """ConfigError (exit 2) unless every table, column and index dlsupervisor uses is there."""
    found = problem(settings)
    if found:
        raise ConfigError(found)


def ensure(settings: Settings) -> None:
    """`verify`, but on SQLite first create what is missing, exactly as `initdb` does."""
    if settings.database.kind == "sqlite" and problem(settings):
        create(settings.database)
    verify(settings)


def create(db: DatabaseSettings) -> None:
    """The store's initdb (idempotent); a directory it cannot create or a URL refused, in one line."""
    from dlsupervisor.store import open_store

    store = open_store(db)
    errors = getattr(store, "errors", pymysql.err)  # the MySQL store's driver's (mysqlclient's)
    try:
        store.initdb()
    except OSError as exc:
        raise ConfigError(f"database {db.path}: cannot create {exc.filename}: {exc.strerror}") from None
    except errors.MySQLError as exc:
        raise mysql_problem(db, exc) from None
    finally:
        store.close()


# -- what is there ---------------------------------------------------------------------------


def _found_sqlite(db: DatabaseSettings, tables: Sequence[str]) -> Schema:
    import sqlite3

    uri = f"file:{quote(os.path.abspath(db.path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            columns = {t: _names(conn, "SELECT name FROM pragma_table_info(?)", t) for t in tables}
            lists = {t: _names(conn, "SELECT name FROM pragma_index_list(?)", t) for t in tables}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise sqlite_problem(db, exc) from None
    return Schema(columns, frozenset((t, i) for t, names in lists.items() for i in names))


def _names(conn: sqlite3.Connection, sql: str, table: str) -> tuple[str, ...]:
    return tuple(row[0] for row in conn.execute(sql, (table,)))


def _found_mysql(db: DatabaseSettings, tables: Sequence[str]) -> Schema:
    marks = ", ".join(["%s"] * len(tables))
    try:
        conn = mysql_connect(
            db,
            charset="utf8mb4",
            connect_timeout=5,
            read_timeout=10,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(_COLUMNS_SQL.format(marks), [db.name, *tables])
                found = cursor.fetchall()
                cursor.execute(_INDEXES_SQL.format(marks), [db.name, *tables])
                indexes = frozenset(cursor.fetchall())
        finally:
            conn.close()
    except pymysql.err.MySQLError as exc:
        raise mysql_problem(db, exc) from None
    columns: dict[str, tuple[str, ...]] = {}
    for table, column in found:
        columns[table] = (*columns.get(table, ()), column)
    return Schema(columns, indexes)


# -- one line each ---------------------------------------------------------------------------


def mysql_problem(db: DatabaseSettings, exc: Exception) -> Exception:
    """A driver's error as ConfigError (the URL is wrong) or StoreUnavailable (try later)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    reason = exc.args[1] if len(exc.args) > 1 else str(exc)
    where = f"database {db.redacted()}"
    tls_problem = _tls_problem(db, exc, code)
    if tls_problem:
        return ConfigError(f"{where}: {tls_problem}")
    if code in _ACCESS_DENIED and db.tls.mode == "disabled":
        return ConfigError(
            f"{where}: {reason}; check the user and password in its url "
            "(and that the server accepts plain text: it was asked for with ssl_mode=disabled)"
        )
    if code in _ACCESS_DENIED:
        return ConfigError(f"{where}: {reason}; check the user and password in its url")
    if code == _UNKNOWN_DATABASE:
        return ConfigError(
            f"{where}: no database {db.name} on the server; create it "
            f"(CREATE DATABASE {db.name} CHARACTER SET utf8mb4), then run: dlsupervisor initdb"
        )
    return StoreUnavailable(f"database: {reason} ({db.redacted()})")


def _tls_problem(db: DatabaseSettings, exc: Exception, code: int | None) -> str | None:
    """A refused certificate or TLS asked for and not offered: the url is wrong, not the server away."""
    if code == CR_SSL_CONNECTION_ERROR:
        reason = exc.args[1] if len(exc.args) > 1 else exc
        return f"{reason}; check ssl_mode, ssl_ca, ssl_cert, ssl_key in its url"
    cause = tls_cause(exc)
    if cause is None:
        return None
    reason = getattr(cause, "verify_message", "") or getattr(cause, "reason", "") or str(cause)
    if "mismatch" in reason or "not valid for" in reason:
        return (
            f"TLS: the server's certificate is not for host {db.host} ({reason}); connect by a name "
            "the certificate holds, or use ssl_mode=verify_ca to skip the name check"
        )
    mode = db.tls.mode or "preferred"
    return f"TLS: the server's certificate was refused ({reason}); check ssl_ca in its url (ssl_mode={mode})"


def sqlite_problem(db: DatabaseSettings, exc: sqlite3.Error) -> Exception:
    """Not a database at all: the url points at the wrong file (exit 2); else it may pass."""
    path = os.path.abspath(db.path)
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; 3.10 has only the message
    if (code & 0xFF) == _SQLITE_NOTADB if code is not None else "not a database" in str(exc):
        return ConfigError(f"database {path}: {exc}; point the [database] url at another file")
    return StoreUnavailable(f"database: {exc} ({path})")


def describe(want: Schema, have: Schema, settings: Settings) -> str | None:
    """The first kind of gap found (tables, then columns, then indexes), or None."""
    db = settings.database
    where = f"database {db.name if db.kind == 'mysql' else os.path.abspath(db.path)}"
    run = f"run: dlsupervisor initdb -c {settings.path}"
    tables = [t for t in want.columns if not have.columns.get(t)]
    if tables:
        return f"{where} has no table {', '.join(tables)}; {run}"
    columns = [f"{t}.{c}" for t, cols in want.columns.items() for c in cols if c not in have.columns[t]]
    if columns:
        ddl = DDL_FILES[db.kind][1]
        return (
            f"{where} has no column {', '.join(columns)}: add it as {ddl} defines it "
            "(dlsupervisor initdb creates missing tables and indexes, not columns)"
        )
    indexes = sorted(want.indexes - have.indexes)
    if indexes:
        return f"{where} has no index {', '.join(f'{i} on {t}' for t, i in indexes)}; {run}"
    return None
