"""The per-item database work the peers and the raw ceiling do: dlsupervisor's own statements.

The claim and the success update are those of dlsupervisor/store/sql.py (`claim`
without its read-back, and `record`), on a connection set up the same way
(autocommit, FOUND_ROWS, utf8mb4).  dlsupervisor's claim also reads the item back,
in the same packet, since its queue carries only ids; the peers get the item's data
in their message and skip that read.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pymysql
from pymysql.constants import CLIENT

CLAIM = (
    "UPDATE download_item SET status = 1, remark = %s, last_updated_time = NOW(3) "
    "WHERE id = %s AND (status = 0 OR (status = 1 AND remark = %s))"
)
SUCCEED = (
    "UPDATE download_item SET status = 2, url = %s, md5_value = %s, file_name = %s, "
    "expire_time = COALESCE(expire_time, NOW() + INTERVAL %s SECOND), remark = NULL, "
    "last_updated_time = NOW(3) WHERE id = %s AND status = 1 AND remark = %s"
)
FAIL = (
    "UPDATE download_item SET status = -1, remark = %s, last_updated_time = NOW(3) "
    "WHERE id = %s AND status = 1"
)

FILE_TTL = 259200
RESULT = ("file:///dev/null", "d41d8cd98f00b204e9800998ecf8427e")  # url, md5 of the no-op export

_conn: pymysql.connections.Connection | None = None
_conn_pid = 0


def connection(url: str | None = None) -> pymysql.connections.Connection:
    """This process's connection (a forked child opens its own)."""
    global _conn, _conn_pid
    if _conn is None or _conn_pid != os.getpid():
        parts = urlsplit(url or os.environ["BENCH_DB_URL"])
        _conn = pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=parts.path.lstrip("/"),
            charset="utf8mb4",
            autocommit=True,
            client_flag=CLIENT.FOUND_ROWS,
        )
        _conn_pid = os.getpid()
    return _conn


def token() -> str:
    return f"running on bench:{os.getpid()} attempt 1"


def claim(conn: pymysql.connections.Connection, item_id: int, claim_token: str) -> bool:
    with conn.cursor() as cursor:
        return cursor.execute(CLAIM, (claim_token, item_id, claim_token)) == 1


def succeed(conn: pymysql.connections.Connection, item_id: int, claim_token: str) -> bool:
    url, md5 = RESULT
    with conn.cursor() as cursor:
        args = (url, md5, f"bench-{item_id}.txt", FILE_TTL, item_id, claim_token)
        return cursor.execute(SUCCEED, args) == 1


def fail(conn: pymysql.connections.Connection, item_id: int, remark: str) -> bool:
    with conn.cursor() as cursor:
        return cursor.execute(FAIL, (remark[:256], item_id)) == 1
