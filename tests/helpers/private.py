"""Private MariaDB and Redis servers for tests that restart or flush them.

The shared services on 127.0.0.1 serve every other test (and other people's runs);
outage and chaos tests get their own server processes on free ports, in a temporary
directory, so a restart or FLUSHALL there disturbs nobody.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pymysql
import redis

from tests.helpers.wait import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dlredis")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--logfile",
                os.path.join(self.dir, "redis.log"),
            ],
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _ping(client), timeout=10, what="private redis up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def flushall(self) -> None:
        redis.Redis.from_url(self.url).flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateMariaDB:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dlmaria")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/dl"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.dir}/sock",
                f"--pid-file={self.dir}/pid",
                "--user=root",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                f"--log-error={self.dir}/error.log",
            ],
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ping, timeout=30, what="private MariaDB up")
        with contextlib.closing(self.connect(None)) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS dl CHARACTER SET utf8mb4")

    def connect(self, database: str | None = "dl") -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True
        )

    def _ping(self) -> bool:
        try:
            self.connect(None).close()
            return True
        except pymysql.err.OperationalError:
            return False

    def stop(self) -> None:
        """A clean shutdown, as a service restart does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
