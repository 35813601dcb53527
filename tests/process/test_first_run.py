"""First run and bad setup, as a user meets them: a SQLite database not created yet, a MySQL
database without (all of) the tables, and a database or Redis that cannot be used.  Every
command answers in one line with a way forward, never a traceback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlsupervisor import statusfile
from dlsupervisor.store import schema
from tests.helpers import services
from tests.helpers.daemon import REPO
from tests.helpers.db import Db
from tests.helpers.env import config_text
from tests.helpers.sessions import kill_session, session_pids
from tests.helpers.wait import wait_until

SECRET = "s3cret-pw"
SUBMIT = ("submit", "--subtype", "behaviour", "--org", "1", "--data", '{"do": "ok"}')
# Every command that reads or writes the tables (status reads only the status file).
COMMANDS = (("start",), ("check",), SUBMIT, ("tasks",), ("cancel", "1"))
CONTACTS = '{"name": "contacts", "columns": ["name", "phone"], "rows": [["Ann", "555-0100"]]}'


def run(config: Path, *args: str, cwd: Path = REPO, timeout: float = 20) -> subprocess.CompletedProcess:
    """One CLI command in its own session; on a timeout its whole session is killed by sid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlsupervisor", *args, "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        out, err = proc.communicate()
        raise AssertionError(f"{args} still running after {timeout}s\n{out}\n{err}") from None
    finally:
        kill_session(proc.pid)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_line(result: subprocess.CompletedProcess, status: int, *phrases: str) -> str:
    """Exit `status`, exactly one stderr line holding every phrase, no traceback, no password."""
    shown = f"{result.args[3:]}: exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.returncode == status, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlsupervisor: "), shown
    assert all(phrase in lines[0] for phrase in phrases), shown
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert SECRET not in result.stderr + result.stdout, shown
    return lines[0]


@pytest.fixture
def bare_mysql() -> Iterator[str]:
    """A MySQL database with no tables at all."""
    url = services.create_mysql_database()
    try:
        yield url
    finally:
        services.drop_mysql_database(url)


def write_config(tmp_path: Path, db_url: str, redis_url: str | None = None, prefix: str = "") -> Path:
    path = tmp_path / "first.ini"
    path.write_text(config_text(db_url, redis_url, prefix, tmp_path / "run"))
    return path


# -- 1. SQLite: start and submit create the directory, file and tables ------------------------


@contextlib.contextmanager
def supervisor(config: Path, cwd: Path) -> Iterator[subprocess.Popen]:
    """`start` in its own session, up once it sends READY=1; stopped and its session killed after."""
    sock_dir = tempfile.mkdtemp(prefix="dln")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(sock_dir, "notify"))
    log_path = Path(sock_dir) / "daemon.log"
    environ = dict(os.environ, PYTHONPATH=str(REPO), NOTIFY_SOCKET=os.path.join(sock_dir, "notify"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlsupervisor", "start", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=environ,
            start_new_session=True,
        )
    messages: list[str] = []

    def ready() -> bool:
        notify.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            messages.extend(notify.recv(4096).decode().splitlines())
        assert proc.poll() is None, f"start exited {proc.returncode}\n{log_path.read_text()}"
        return "READY=1" in messages

    try:
        wait_until(ready, timeout=30, what="READY=1", context=lambda: f"{messages}\n{log_path.read_text()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        left = session_pids(proc.pid)
        kill_session(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        notify.close()
        log = log_path.read_text(errors="replace")
        shutil.rmtree(sock_dir, ignore_errors=True)
        assert not left, f"processes left behind after stop: {left}"
        assert "Traceback" not in log, log


def fresh_project(tmp_path: Path) -> tuple[Path, Path]:
    """A directory holding only conf/embedded.ini: no ./var, no database file."""
    project = tmp_path / "project"
    project.mkdir()
    config = project / "embedded.ini"
    shutil.copy(REPO / "conf" / "embedded.ini", config)
    assert not (project / "var").exists()
    return project, config


def wait_done(project: Path, task_id: int, proc: subprocess.Popen) -> None:
    db = Db(f"sqlite:///{project}/var/dl.db")
    try:
        wait_until(
            lambda: db.task(task_id)["status"] == 2 and [i["status"] for i in db.items_of(task_id)] == [2],
            timeout=30,
            what=f"task {task_id} and its item DONE",
            context=lambda: (
                f"task {db.task(task_id)}, items {db.items_of(task_id)}, status "
                f"{statusfile.read(str(project / 'var' / 'run' / 'status.json'))}"
            ),
        )
    finally:
        db.close()


def test_on_sqlite_submit_before_initdb_creates_the_database_and_start_runs_it(tmp_path):
    project, config = fresh_project(tmp_path)
    submitted = run(config, "submit", "--subtype", "contacts", "--org", "1", "--data", CONTACTS, cwd=project)
    assert submitted.returncode == 0 and submitted.stderr == "", submitted
    task_id = int(submitted.stdout)
    assert (project / "var" / "dl.db").is_file()
    with supervisor(config, project) as proc:
        wait_done(project, task_id, proc)
    assert (project / "var" / "files" / "1" / str(task_id) / "1" / "contacts.csv").is_file()


def test_on_sqlite_start_before_initdb_creates_the_database_and_serves_it(tmp_path):
    project, config = fresh_project(tmp_path)
    with supervisor(config, project) as proc:
        submitted = run(
            config, "submit", "--subtype", "contacts", "--org", "1", "--data", CONTACTS, cwd=project
        )
        assert submitted.returncode == 0, submitted
        wait_done(project, int(submitted.stdout), proc)


def test_on_sqlite_the_reading_commands_name_initdb_and_create_nothing(tmp_path):
    project, config = fresh_project(tmp_path)
    for args in (("check",), ("tasks",), ("cancel", "1")):
        assert_one_line(run(config, *args, cwd=project), 2, "dl.db", "dlsupervisor initdb -c")
    assert not (project / "var" / "dl.db").exists()


def test_on_sqlite_a_file_that_is_not_a_database_is_one_line_for_every_command(tmp_path):
    project, config = fresh_project(tmp_path)
    (project / "var").mkdir()
    (project / "var" / "dl.db").write_text("not a database\n")
    for args in (("start",), ("check",), ("submit", "--subtype", "contacts", "--org", "1"), ("tasks",)):
        assert_one_line(run(config, *args, cwd=project), 2, "dl.db: file is not a database")


# -- 2. MySQL without the tables (or a column, or an index) ------------------------------------


def test_the_expected_schema_is_read_from_both_ddl_files_alike():
    mysql, sqlite = schema.expected("mysql"), schema.expected("sqlite")
    tables = [
        "download_task_main",
        "download_item",
        "dlsupervisor_subtype",
        "dlsupervisor_file",
        "dlsupervisor_org_slots",
        "dlsupervisor_progress",
        "dlsupervisor_notice",
        "dlsupervisor_counter",
    ]
    assert list(mysql.columns) == tables
    assert mysql.columns["dlsupervisor_progress"] == ("item_id", "task_id", "done", "total", "updated_time")
    assert mysql.columns == sqlite.columns
    assert "md5_value" in mysql.columns["download_item"] and "PRIMARY" not in mysql.columns["download_item"]
    assert mysql.indexes >= {
        ("download_task_main", "index_dls_status_updated"),
        ("download_item", "index_dls_status_updated"),
        ("download_item", "index_dls_status_expire"),
        ("dlsupervisor_file", "index_dls_file_due"),
        ("download_item", "index_dls_org_status"),
        ("dlsupervisor_progress", "index_dls_progress_task"),
        ("dlsupervisor_notice", "index_dls_notice_due"),
    }
    assert ("download_item", "index_item_dls_status_expire") in sqlite.indexes


def test_every_command_on_a_database_without_tables_names_them_and_initdb(bare_mysql, tmp_path):
    config = write_config(tmp_path, bare_mysql)
    name = bare_mysql.rsplit("/", 1)[1]
    for args in COMMANDS:
        assert_one_line(
            run(config, *args),
            2,
            f"database {name} has no table download_task_main",
            "download_item",
            "dlsupervisor_subtype",
            f"run: dlsupervisor initdb -c {config}",
        )
    assert run(config, "initdb").returncode == 0
    checked = run(config, "check")
    assert checked.returncode == 0 and "ok: database" in checked.stdout, checked


def test_every_command_on_a_table_missing_a_column_names_it_and_initdb(bare_mysql, tmp_path):
    config = write_config(tmp_path, bare_mysql)
    assert run(config, "initdb").returncode == 0
    db = Db(bare_mysql)
    try:
        db.execute("ALTER TABLE download_item DROP COLUMN md5_value")
    finally:
        db.close()
    for args in COMMANDS:
        assert_one_line(run(config, *args), 2, "download_item.md5_value", "dlsupervisor initdb")


def test_every_command_on_a_table_missing_an_index_names_it_and_initdb(bare_mysql, tmp_path):
    config = write_config(tmp_path, bare_mysql)
    assert run(config, "initdb").returncode == 0
    db = Db(bare_mysql)
    try:
        db.execute("DROP INDEX index_dls_status_expire ON download_item")
    finally:
        db.close()
    for args in COMMANDS:
        assert_one_line(
            run(config, *args), 2, "index_dls_status_expire on download_item", "run: dlsupervisor initdb"
        )
    assert run(config, "initdb").returncode == 0  # initdb puts it back
    assert run(config, "check").returncode == 0


# -- 3. a database or Redis that cannot be used: one line, no traceback, no password -----------


def test_an_unreachable_database_is_one_line_for_every_command_but_start(tmp_path):
    config = write_config(tmp_path, f"mysql://root:{SECRET}@127.0.0.1:1/dlsv_t_nowhere")
    for args in COMMANDS[1:]:  # start waits for a database that is down, by design
        assert_one_line(run(config, *args), 1, "dlsupervisor: database:", "127.0.0.1:1")


def test_a_wrong_password_is_one_line_for_every_command(bare_mysql, tmp_path):
    user, rest = bare_mysql.split("://", 1)[1].split("@", 1)
    config = write_config(tmp_path, f"mysql://{user.split(':')[0]}:{SECRET}@{rest}")
    for args in COMMANDS:
        assert_one_line(run(config, *args), 2, "Access denied", "password")


def test_an_unknown_database_is_one_line_for_every_command(tmp_path):
    name = f"dlsv_t_{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, f"{services.MYSQL_URL.rstrip('/')}/{name}")
    for args in COMMANDS:
        assert_one_line(run(config, *args), 2, f"no database {name}", "dlsupervisor initdb")


@pytest.mark.parametrize(
    ("redis_url", "status", "phrase"),
    [
        (f"redis://:{SECRET}@127.0.0.1:1/0", 1, "dlsupervisor: redis:"),
        (f"redis://nosuchuser:{SECRET}@127.0.0.1:6379/0", 2, "check the user and password"),
    ],
    ids=["unreachable", "wrong-password"],
)
def test_a_redis_that_cannot_be_used_fails_check_in_one_line_and_submit_still_records(
    bare_mysql, tmp_path, redis_url, status, phrase
):
    services.new_redis_prefix()  # skips (or fails in CI) when the real Redis is not there
    config = write_config(tmp_path, bare_mysql, redis_url, "dlt:first:")
    assert run(config, "initdb").returncode == 0
    assert_one_line(run(config, "check"), status, phrase)
    submitted = run(config, *SUBMIT)  # the task is in the database: the scheduler sends the wake-up
    assert submitted.returncode == 0 and int(submitted.stdout) > 0, submitted
    assert "Traceback" not in submitted.stderr and SECRET not in submitted.stderr, submitted
    assert run(config, "tasks").returncode == 0
