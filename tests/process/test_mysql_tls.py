"""MySQL over TLS (issue 16): a private MariaDB with a CA and certificate made here and
require_secure_transport = ON.  Plain text, an unknown CA and a wrong host name are
refused in one line by `check`; a verified connection works for the daemon and `check`
shows its TLS version and cipher."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dlsupervisor.model import TaskStatus
from tests.helpers import services
from tests.helpers.certs import make_ca
from tests.helpers.daemon import REPO, Daemon
from tests.helpers.env import Env
from tests.helpers.private import PrivateMariaDB

BEHAVIOUR = "tests.hooks.behaviours:Behaviour"


@pytest.fixture(scope="module")
def tls_maria(tmp_path_factory):
    """(server, CA): the certificate names localhost only, so 127.0.0.1 is a wrong host name."""
    tmp = tmp_path_factory.mktemp("maria-tls")
    ca = make_ca(tmp / "ca")
    cert, key = ca.issue("server", cn="localhost", san="DNS:localhost")
    tls = (f"--ssl-ca={ca.cert}", f"--ssl-cert={cert}", f"--ssl-key={key}", "--require-secure-transport=ON")
    server = PrivateMariaDB(tls)
    try:
        server.start()
        yield server, ca
    finally:
        server.close()


def check(tmp_path, url: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"check-{abs(hash(url))}.ini"
    path.write_text(f"[supervisor]\nrun_dir = {tmp_path}/run\n[database]\nurl = {url}\n")
    return subprocess.run(
        [sys.executable, "-m", "dlsupervisor", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_plain_connection_is_refused_in_one_line(tls_maria, tmp_path):
    server, _ = tls_maria
    line = one_line_refusal(check(tmp_path, f"mysql://root@localhost:{server.port}/dl?ssl_mode=disabled"))
    assert "Access denied" in line and "ssl_mode=disabled" in line, line


def test_a_verified_connection_works_and_check_shows_its_tls(tls_maria, tmp_path):
    server, ca = tls_maria
    url = f"mysql://root@localhost:{server.port}/dl?ssl_ca={ca.cert}"
    env = Env("mysql-tls", url, None, "", tmp_path)  # its store runs initdb, over TLS
    try:
        result = check(tmp_path, env.db_url)
        assert result.returncode == 0, result.stderr
        line = next(x for x in result.stdout.splitlines() if x.startswith("ok: database"))
        assert "TLS TLSv1." in line and "certificate and host name verified" in line, line
    finally:
        env.close()


def test_the_daemon_runs_an_export_over_verified_tls(tls_maria, tmp_path):
    server, ca = tls_maria
    env = Env("mysql-tls", f"mysql://root@localhost:{server.port}/dl?ssl_ca={ca.cert}", None, "", tmp_path)
    daemon = Daemon(env, subtypes={"behaviour": {"handler": BEHAVIOUR, "workers": 1}})
    try:
        daemon.start()
        task_id, _ = env.new_task({"do": "ok"})
        daemon.wait_task(task_id, status=TaskStatus.DONE, timeout=30)
    finally:
        left = daemon.close()
        env.close()
    assert not left, f"processes left behind: {left}"


def test_an_unknown_ca_is_refused_in_one_line(tls_maria, tmp_path):
    server, _ = tls_maria
    other = make_ca(tmp_path / "other", "another CA")
    line = one_line_refusal(check(tmp_path, f"mysql://root@localhost:{server.port}/dl?ssl_ca={other.cert}"))
    assert "certificate was refused" in line and "ssl_ca" in line, line


def test_verify_identity_refuses_a_host_name_the_certificate_does_not_hold(tls_maria, tmp_path):
    server, ca = tls_maria
    url = f"mysql://root@127.0.0.1:{server.port}/dl?ssl_ca={ca.cert}"
    line = one_line_refusal(check(tmp_path, url + "&ssl_mode=verify_identity"))
    assert "not for host 127.0.0.1" in line, line
    result = check(tmp_path, url + "&ssl_mode=verify_ca")  # the same CA, the name not checked
    assert "certificate" not in result.stderr, result.stderr


def test_tls_required_from_a_server_without_it_is_one_line(tmp_path):
    try:
        with services.mysql_root() as conn, conn.cursor() as cursor:
            cursor.execute("SHOW GLOBAL VARIABLES LIKE 'have_ssl'")
            have_ssl = (cursor.fetchone() or ("", ""))[1]
    except Exception as exc:  # noqa: BLE001 - any failure: the shared server is not there
        services.unavailable("MariaDB", exc)
    if have_ssl == "YES":
        pytest.skip("the shared MariaDB offers TLS; this needs one that does not")
    host = services.MYSQL_URL.split("@")[-1].rstrip("/")
    line = one_line_refusal(check(tmp_path, f"mysql://root@{host}/mysql?ssl_mode=required"))
    assert "is required but the server" in line and "ssl_mode" in line, line
