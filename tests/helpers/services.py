"""Real MariaDB and Redis for tests: a fresh database and key prefix per test.

URLs come from the environment (defaults: this machine's services).  When a
service is unreachable the test is skipped locally and fails in CI (CI=1).
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pymysql
import pytest
import redis

MYSQL_URL = os.environ.get("DLSV_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("DLSV_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} unreachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def mysql_root() -> pymysql.connections.Connection:
    parts = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        charset="utf8mb4",
        autocommit=True,
    )


def create_mysql_database() -> str:
    """A new empty database; returns its url."""
    name = f"dlsv_t_{uuid.uuid4().hex[:8]}"
    try:
        conn = mysql_root()
    except pymysql.err.OperationalError as exc:
        unavailable("MariaDB", exc)
    with conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return f"{MYSQL_URL.rstrip('/')}/{name}"


def drop_mysql_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("dlsv_t_"), name
    try:
        conn = mysql_root()
    except pymysql.err.OperationalError:
        return
    with conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def new_redis_prefix() -> str:
    try:
        redis_client().ping()
    except redis.exceptions.ConnectionError as exc:
        unavailable("Redis", exc)
    return f"dlt:{uuid.uuid4().hex[:8]}:"


def drop_redis_prefix(prefix: str) -> None:
    assert prefix.startswith("dlt:"), prefix
    client = redis_client()
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.exceptions.ConnectionError:
        pass
