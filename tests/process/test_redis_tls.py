"""Redis over TLS with a password (issue 16): a private redis-server listening with TLS only
(--port 0 --tls-port), its certificate made here, --requirepass.  The daemon works through
rediss:// with the password from the environment; a wrong password or CA is one line, and
no output shows the password."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from dlsupervisor.model import TaskStatus
from tests.helpers.certs import make_ca
from tests.helpers.daemon import REPO, Daemon
from tests.helpers.env import Env
from tests.helpers.private import PrivateRedis

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redis-tls")
    ca = make_ca(tmp / "ca")
    cert, key = ca.issue("redis", cn="localhost", san="DNS:localhost,IP:127.0.0.1")
    server = PrivateRedis(tls=(cert, key, ca.cert), password=f"pw-{uuid.uuid4().hex}")
    try:
        server.start()
        yield server, ca
    finally:
        server.close()


def url_without_password(server: PrivateRedis) -> str:
    return server.url.replace(f":{server.password}@", "")


def check(config_path, environ=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlsupervisor", "check", "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO), **(environ or {})),
    )


def test_a_daemon_works_through_rediss_with_the_password_from_the_environment(
    tls_redis, tmp_path, monkeypatch
):
    server, _ = tls_redis
    monkeypatch.setenv("DLSUPERVISOR_REDIS_PASSWORD", server.password)
    env = Env("sqlite", f"sqlite://{tmp_path}/dl.db", url_without_password(server), "dlt:tls:", tmp_path)
    daemon = Daemon(env, subtypes={"behaviour": {"handler": BEHAVIOUR, "workers": 1}})
    try:
        daemon.start()
        task_id, _ = env.new_task({"do": "ok"})
        daemon.wait_task(task_id, status=TaskStatus.DONE, timeout=30)
        assert server.client().exists("dlt:tls:subtypes"), "the registry is not in the TLS Redis"
        result = check(env.config_path)
        assert result.returncode == 0, result.stderr
        line = next(x for x in result.stdout.splitlines() if x.startswith("ok: redis"))
        assert "rediss://localhost:" in line and "TLS TLSv1." in line, line
        shown = result.stdout + result.stderr + daemon.log_path.read_text(errors="replace")
        assert server.password not in shown
    finally:
        left = daemon.close()
        env.close()
    assert not left, f"processes left behind: {left}"


def write_config(tmp_path, redis_url: str):
    path = tmp_path / "check.ini"
    path.write_text(f"[database]\nurl = sqlite:///{tmp_path}/dl.db\n[redis]\nurl = {redis_url}\n")
    subprocess.run(
        [sys.executable, "-m", "dlsupervisor", "initdb", "-c", str(path)],
        check=True,
        capture_output=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    return path


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_wrong_password_is_one_line(tls_redis, tmp_path):
    server, _ = tls_redis
    path = write_config(tmp_path, server.url.replace(server.password, "wrong-" + server.password[:6]))
    line = one_line(check(path))
    assert "invalid username-password pair" in line and "check the user and password" in line, line
    assert server.password not in line


def test_a_wrong_ca_is_one_line(tls_redis, tmp_path):
    server, _ = tls_redis
    other = make_ca(tmp_path / "other", "another CA")
    path = write_config(
        tmp_path, server.url.replace(f"ssl_ca_certs={server.tls[2]}", f"ssl_ca_certs={other.cert}")
    )
    line = one_line(check(path))
    assert "TLS:" in line and "ssl_ca_certs" in line, line
