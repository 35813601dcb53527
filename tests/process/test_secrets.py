"""Issue 11: a password in the configuration appears nowhere an operator or a log can see it:
`check`, `status`, `tasks`, the log, status.json, process titles.  Against the real MariaDB
and Redis, with a MariaDB user and a Redis ACL user of the test's own that have passwords."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pymysql
import pytest
import redis

from dlsupervisor.model import TaskStatus
from tests.helpers import services
from tests.helpers.daemon import REPO, Daemon, title
from tests.helpers.env import Env


def secret() -> str:
    """A unique password core: any rendering of a password made from it contains it."""
    return f"Pw{uuid.uuid4().hex[:12]}"


def password_of(core: str) -> str:
    return f"{core}@:/#%"  # characters a url must quote


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlsupervisor", *args, "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


@pytest.fixture
def secret_env(tmp_path) -> Iterator[tuple[Env, str]]:
    """An Env whose database and Redis urls carry passwords; the users are dropped after."""
    core = secret()
    password = password_of(core)
    user = f"dlsv_pw_{uuid.uuid4().hex[:8]}"
    root_db_url = services.create_mysql_database()
    prefix = services.new_redis_prefix()
    name = urlsplit(root_db_url).path.lstrip("/")
    root = services.mysql_root()
    red = services.redis_client()
    try:
        with root.cursor() as cursor:
            cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cursor.execute(f"GRANT ALL ON `{name}`.* TO %s@'%%'", (user,))
        red.execute_command("ACL", "SETUSER", user, "on", f">{password}", "allkeys", "allchannels", "+@all")
        db = urlsplit(services.MYSQL_URL)
        db_url = f"mysql://{user}:{quote(password, safe='')}@{db.hostname}:{db.port or 3306}/{name}"
        rd = urlsplit(services.REDIS_URL)
        redis_url = f"redis://{user}:{quote(password, safe='')}@{rd.hostname}:{rd.port or 6379}{rd.path}"
        env = Env("secret", db_url, redis_url, prefix, tmp_path)
        try:
            yield env, core
        finally:
            env.close()
    finally:
        with root.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        root.close()
        red.execute_command("ACL", "DELUSER", user)
        services.drop_mysql_database(root_db_url)
        services.drop_redis_prefix(prefix)


def test_the_passwords_appear_in_no_output_log_status_file_or_title(secret_env):
    env, core = secret_env
    d = Daemon(env, subtypes={"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": 1}})
    try:
        d.start()
        seen = {"check": d.cli("check").stdout}
        assert "ok: database mysql://dlsv_pw_" in seen["check"] and ":***@" in seen["check"]
        task_id = int(d.cli("submit", "--subtype", "behaviour", "--org", "7", "--data", "{}").stdout)
        d.wait_task(task_id, status=TaskStatus.DONE)
        d.rewrite(subtypes={"behaviour": {"handler": "tests.hooks.behaviours:Behaviour", "workers": 2}})
        d.signal(signal.SIGHUP)  # a reload logs the new settings' effects too
        d.wait_child("behaviour#2", state="idle")
        for args in (("status",), ("status", "--json"), ("tasks", "--json")):
            seen[" ".join(args)] = d.cli(*args).stdout
        seen["titles"] = "\n".join(title(pid) for pid in d.session_pids())
        seen["status.json"] = json.dumps(d.status())
        d.stop()
        seen["log"] = d.log_path.read_text(errors="replace")
        assert "master: started" in seen["log"] and "dlsupervisor: worker behaviour#2" in seen["titles"]
        leaks = [where for where, text in seen.items() if core in text]
        assert leaks == [], {where: seen[where] for where in leaks}
    finally:
        left = d.close()
    assert left == [], f"processes left behind: {left}"


@pytest.mark.parametrize("where", ["database", "redis"])
def test_check_with_a_wrong_password_does_not_echo_it(tmp_path, where):
    core = secret()
    wrong = quote(password_of(core), safe="")
    user = f"dlsv_nobody_{uuid.uuid4().hex[:8]}"
    db, rd = urlsplit(services.MYSQL_URL), urlsplit(services.REDIS_URL)
    if where == "database":
        db_url = f"mysql://{user}:{wrong}@{db.hostname}:{db.port or 3306}/test"
        redis_url = services.REDIS_URL
    else:
        db_url = f"sqlite:///{tmp_path}/dl.db"
        redis_url = f"redis://{user}:{wrong}@{rd.hostname}:{rd.port or 6379}{rd.path}"
    path = tmp_path / "supervisor.ini"
    path.write_text(f"[database]\nurl = {db_url}\n[redis]\nurl = {redis_url}\n")
    if where == "redis":
        assert cli(path, "initdb").returncode == 0  # check reaches Redis only past the database
    result = cli(path, "check")
    assert result.returncode == 2, (result.stdout, result.stderr)  # a wrong password is configuration
    refused = "Access denied" if where == "database" else "invalid username-password pair"
    assert refused in result.stderr, result.stderr
    assert core not in result.stdout + result.stderr


def test_the_test_users_really_need_their_passwords(secret_env):
    """Else the test above would prove nothing: a wrong password is refused by both servers."""
    env, core = secret_env
    user = urlsplit(env.db_url).username
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(host=urlsplit(services.MYSQL_URL).hostname, user=user, password=core).close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(services.REDIS_URL, username=user, password=core).ping()
    assert env.db.execute("SELECT 1 AS one")[0]["one"] == 1  # the right one works
