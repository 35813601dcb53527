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
        # Its own temporary directory: the bootstrap's temporary tables are named from pid and
        # thread id in the shared /tmp, where two installs at once (pytest -n 2) collided
        # ("Unknown table 'mysql.tmp_user_sys'").
        self.tmp = os.path.join(self.dir, "tmp")
        os.mkdir(self.tmp)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--tmpdir={self.tmp}",
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
                f"--tmpdir={self.tmp}",
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


class PrivateSentinel:
    """One Sentinel (`redis-server sentinel.conf --sentinel`) watching `master` as `name`."""

    def __init__(self, master: PrivateRedis, name: str = "mymaster") -> None:
        need("redis-server")
        self.dir = tempfile.mkdtemp(prefix="dlsentinel")
        self.port = free_port()
        self.name = name
        self.proc: subprocess.Popen | None = None
        conf = os.path.join(self.dir, "sentinel.conf")  # Sentinel rewrites it: its own copy
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir}/sentinel.log\n"
                f"sentinel monitor {name} 127.0.0.1 {master.port} 1\n"
                f"sentinel down-after-milliseconds {name} 2000\n"
                f"sentinel failover-timeout {name} 10000\n"
            )
        self.conf = conf

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", self.conf, "--sentinel"], start_new_session=True)
        client = self.client()
        wait_until(lambda: _ping(client), timeout=10, what="private sentinel up")

    def master_port(self) -> int:
        return int(self.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)[1])

    def replicas_ready(self) -> bool:
        """Sentinel knows a replica that is up and in sync: a failover can pick it."""
        found = self.client().execute_command("SENTINEL", "REPLICAS", self.name)
        return any(
            r.get("master-link-status") == "ok"
            and "down" not in r.get("flags", "")
            and "disconnected" not in r.get("flags", "")
            for r in (
                dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
                for entry in found
            )
        )

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
