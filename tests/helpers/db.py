"""Direct access to the tables, independent of the store under test.

Tests create work the way a business application does (INSERT) and read the
outcome the way it would (SELECT), through a plain connection.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql
from pymysql.cursors import DictCursor

# SQLite keeps timestamps as UTC text; rows come back with datetimes, as from PyMySQL.
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
TIMESTAMP_COLUMNS = ("created_time", "last_updated_time", "expire_time", "seen_time")


def _sqlite_arg(value: Any) -> Any:
    return value.strftime(SQLITE_TIME_FORMAT)[:-3] if isinstance(value, datetime) else value


def _sqlite_row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for name in TIMESTAMP_COLUMNS:
        if isinstance(out.get(name), str):
            out[name] = datetime.fromisoformat(out[name])
    return out


class Db:
    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.kind = "sqlite" if parts.scheme == "sqlite" else "mysql"
        if self.kind == "mysql":
            query = dict(parse_qsl(parts.query))  # a TLS server's CA: verified, as the url says
            tls = {"ssl_ca": query["ssl_ca"], "ssl_verify_cert": True} if "ssl_ca" in query else {}
            self._conn = pymysql.connect(
                host=parts.hostname,
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                database=parts.path.lstrip("/"),
                charset="utf8mb4",
                autocommit=True,
                cursorclass=DictCursor,
                **tls,
            )
        else:
            path = unquote(url[len("sqlite://") :])
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            self._conn.row_factory = sqlite3.Row

    def execute(self, sql: str, args: tuple | list = ()) -> Any:
        """Run one statement written with %s placeholders; return lastrowid or rows."""
        if self.kind == "sqlite":
            sql = sql.replace("%s", "?").replace("NOW(3)", "strftime('%Y-%m-%d %H:%M:%f','now')")
            cursor = self._conn.execute(sql, [_sqlite_arg(a) for a in args])
            rows = [_sqlite_row(r) for r in cursor.fetchall()]
            return rows if cursor.description else cursor.lastrowid
        with self._conn.cursor() as cursor:
            cursor.execute(sql, args or None)
            return list(cursor.fetchall()) if cursor.description else cursor.lastrowid

    def insert(self, table: str, **cols: Any) -> int:
        names = ", ".join(cols)
        marks = ", ".join(["%s"] * len(cols))
        return self.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(cols.values()))

    def task(self, task_id: int) -> dict[str, Any]:
        return self.execute("SELECT * FROM download_task_main WHERE id = %s", (task_id,))[0]

    def item(self, item_id: int) -> dict[str, Any]:
        return self.execute("SELECT * FROM download_item WHERE id = %s", (item_id,))[0]

    def items_of(self, task_id: int) -> list[dict[str, Any]]:
        return self.execute("SELECT * FROM download_item WHERE task_id = %s ORDER BY id", (task_id,))

    def age(self, table: str, row_id: int, seconds: float) -> None:
        """Move a row's last_updated_time into the past (as if time had passed)."""
        if self.kind == "sqlite":
            self.execute(
                f"UPDATE {table} SET last_updated_time = "
                "strftime('%Y-%m-%d %H:%M:%f', 'now', %s) WHERE id = %s",
                (f"-{seconds} seconds", row_id),
            )
        else:
            self.execute(
                f"UPDATE {table} SET last_updated_time = NOW(3) - INTERVAL %s SECOND WHERE id = %s",
                (seconds, row_id),
            )

    def close(self) -> None:
        self._conn.close()
