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
import pytest
import redis

from tests.helpers.wait import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need(binary: str) -> None:
    """Skip (locally) or fail (in CI, CI=1) a test whose server binary is not installed."""
    if shutil.which(binary) is None and not os.path.exists(binary):
        message = f"{binary} not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class PrivateRedis:
    """`tls`: (cert, key, ca) to listen with TLS only; `args`: more redis-server arguments."""

    def __init__(
        self, *, tls: tuple[str, str, str] | None = None, password: str = "", args: tuple[str, ...] = ()
    ) -> None:
        need("redis-server")
        self.dir = tempfile.mkdtemp(prefix="dlredis")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.tls = tls
        self.password = password
        self.args = args

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}localhost:{self.port}/0?ssl_ca_certs={self.tls[2]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if not self.tls:
            return ["--port", str(self.port)]
        cert, key, ca = self.tls
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert, "--tls-key-file", key,
                "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]  # fmt: skip

    def start(self) -> None:
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [
                "redis-server",
                *self._listen_args(),
                *auth,
                *self.args,
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
        client = self.client()
        wait_until(lambda: _ping(client), timeout=10, what="private redis up")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def flushall(self) -> None:
        self.client().flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateMariaDB:
    """`args`: more mariadbd options (TLS ones, require_secure_transport); set up over its socket."""

    def __init__(self, args: tuple[str, ...] = ()) -> None:
        need("/usr/sbin/mariadbd")
        need("mariadb-install-db")
        self.args = args
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
                *self.args,
            ],
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ping, timeout=30, what="private MariaDB up")
        with contextlib.closing(self.connect(None)) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS dl CHARACTER SET utf8mb4")

    def connect(self, database: str | None = "dl") -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=f"{self.dir}/sock", user="root", database=database, autocommit=True
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
