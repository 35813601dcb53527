"""The command line of contract.md §3: one function per command.

Every configuration problem (a database without the tables, a refused password)
ends as one line on stderr and exit status 2; a database or Redis that is down,
as one line and exit status 1.  Never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import psutil

from dlsupervisor import config, handlers, logsetup, outcomes, pidfile, progress, statusfile
from dlsupervisor.config import Settings
from dlsupervisor.errors import EX_FAILURE, EX_OK, EX_USAGE, ConfigError, QueueUnavailable, StoreUnavailable
from dlsupervisor.model import TaskStatus
from dlsupervisor.statusfile import ChildStatus

if TYPE_CHECKING:
    from dlsupervisor.client import Client

EX_NOT_RUNNING = 3  # `status` of a supervisor that is not running (LSB)

STATUS_NAMES = MappingProxyType({s.value: s.name for s in TaskStatus})  # aliases (FAIL, ...) are not iterated


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"dlsupervisor: {exc}", file=sys.stderr)
        return EX_USAGE
    except (StoreUnavailable, QueueUnavailable) as exc:
        print(f"dlsupervisor: {exc}", file=sys.stderr)
        return EX_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = _backend_error(exc)
        if line is None:
            raise
        print(f"dlsupervisor: {line}", file=sys.stderr)
        return EX_FAILURE


def _backend_error(exc: Exception) -> str | None:
    """A driver's own error that got past the store (a race with a schema change, ...):
    still one line.  Neither driver puts a password in its messages."""
    import sqlite3

    import pymysql
    import redis

    if isinstance(exc, (pymysql.err.MySQLError, sqlite3.Error)) or _mysqlclient_error(exc):
        return f"database: {exc}"
    if isinstance(exc, redis.exceptions.RedisError):
        return f"redis: {exc}"
    return None


def _mysqlclient_error(exc: Exception) -> bool:
    """mysqlclient's own error (its store's driver), without importing it where it is unused."""
    mysqldb = sys.modules.get("MySQLdb")
    return mysqldb is not None and isinstance(exc, mysqldb.MySQLError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlsupervisor", description="Supervisor daemon for export tasks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", required=True, metavar="FILE", help="the INI file")
        sub.set_defaults(func=func)
        return sub

    start = command("start", cmd_start, "run the supervisor (foreground unless --daemon)")
    start.add_argument("--daemon", action="store_true", help="detach (python-daemon); pidfile in run_dir")
    stop = command("stop", cmd_stop, "SIGTERM the supervisor and wait for it to exit")
    stop.add_argument(
        "--timeout", type=float, help="seconds to wait (default: stop_timeout + kill_grace + 10)"
    )
    command("reload", cmd_reload, "SIGHUP the supervisor: apply the file's changes")
    status = command("status", cmd_status, "one row per child of the running supervisor")
    status.add_argument("--json", action="store_true")
    command("check", cmd_check, "validate the file, import handlers, reach the database and Redis")
    command("initdb", cmd_initdb, "create the tables and indexes (idempotent)")
    submit = command("submit", cmd_submit, "create a task; prints its id")
    submit.add_argument("--subtype", required=True, metavar="NAME", help="a [subtype:NAME] section")
    submit.add_argument("--org", required=True, type=int, metavar="ORG", help="org_id")
    submit.add_argument("--data", metavar="JSON", help="the task's data (JSON)")
    submit.add_argument("--name", metavar="TEXT", help="task_name (default: the handler's task_name)")
    tasks = command("tasks", cmd_tasks, "recent tasks with their items counted by status")
    tasks.add_argument("--status", metavar="S", help="a status number or name (done, failed, ...)")
    tasks.add_argument("--limit", type=int, default=20, metavar="N")
    tasks.add_argument("--json", action="store_true")
    cancel = command("cancel", cmd_cancel, "cancel a task; its running exports are killed")
    cancel.add_argument("task_id", type=int, metavar="TASK_ID")
    return parser


def pid_path(settings: Settings) -> str:
    return os.path.join(settings.supervisor.run_dir, "dlsupervisor.pid")


# -- the daemon ---------------------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    from dlsupervisor.supervisor import Master, preflight

    settings = config.load(args.config)
    _start_database(settings)
    problem = preflight(settings)
    if problem:
        raise ConfigError(problem)
    lock = pidfile.PidFile(pid_path(settings))
    holder = pidfile.running_pid(lock.path)
    if holder:
        raise ConfigError(f"{lock.path}: another supervisor is running (pid {holder})")
    if args.daemon:
        return _start_daemon(settings, lock)
    lock.acquire()
    try:
        logsetup.configure(settings.supervisor.log_level, settings.supervisor.log_file, "master")
        return Master(settings).run()
    finally:
        lock.release()


def _start_daemon(settings: Settings, lock: pidfile.PidFile) -> int:
    import daemon

    from dlsupervisor.supervisor import Master

    log_file = settings.supervisor.log_file or os.path.join(settings.supervisor.run_dir, "dlsupervisor.log")
    settings = dataclasses.replace(
        settings, supervisor=dataclasses.replace(settings.supervisor, log_file=log_file)
    )
    os.makedirs(settings.supervisor.run_dir, exist_ok=True)
    context = daemon.DaemonContext(
        pidfile=lock,
        working_directory=os.getcwd(),
        umask=0o022,
        signal_map={},
        prevent_core=False,
    )
    with context:
        logsetup.configure(settings.supervisor.log_level, log_file, "master")
        return Master(settings).run()


def _start_database(settings: Settings) -> None:
    """A missing schema stops `start` in one line (on SQLite it is created instead), before a
    scheduler would crash-loop on it; a database that is down passes: the supervisor waits."""
    from dlsupervisor.store import schema

    try:
        schema.ensure(settings)
    except StoreUnavailable:
        pass


def _running(settings: Settings) -> int | None:
    return pidfile.running_pid(pid_path(settings))


def cmd_stop(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    pid = _running(settings)
    if pid is None:
        print("dlsupervisor: not running")
        return EX_OK
    sup = settings.supervisor
    timeout = args.timeout if args.timeout is not None else sup.stop_timeout + sup.kill_grace + 10
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            print(f"dlsupervisor: stopped (pid {pid})")
            return EX_OK
        time.sleep(0.05)
    print(f"dlsupervisor: pid {pid} still running after {timeout:g}s", file=sys.stderr)
    return EX_FAILURE


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def cmd_reload(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    pid = _running(settings)
    if pid is None:
        print("dlsupervisor: not running", file=sys.stderr)
        return EX_FAILURE
    os.kill(pid, signal.SIGHUP)
    print(f"dlsupervisor: reload requested (pid {pid})")
    return EX_OK


def cmd_status(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    pid = _running(settings)
    status = statusfile.load(os.path.join(settings.supervisor.run_dir, "status.json"))
    if pid is None or status is None:
        print(json.dumps({"running": False}) if args.json else "dlsupervisor: not running")
        return EX_NOT_RUNNING
    rows = _measure(status.children)
    if args.json:
        children = [row.to_json() for row in rows]
        print(
            json.dumps({"running": True, "master": status.master.to_json(), "children": children}, indent=2)
        )
        return EX_OK
    master = status.master
    print(f"master pid {master.pid} ({master.phase}), config {master.config}")
    _print_table(
        ["NAME", "ROLE", "SUBTYPE", "SLOT", "PID", "STATE", "ITEM", "ELAPSED", "RESTARTS", "RSS", "CPU"]
        + ["PROGRESS"],
        [_status_cells(row) for row in rows],
    )
    return EX_OK


@dataclasses.dataclass(frozen=True)
class _Measured:
    """A child's row of the status file, plus what `status` measures of its process tree."""

    child: ChildStatus
    elapsed: float | None
    rss_mb: float | None
    cpu_percent: float | None

    def to_json(self) -> dict[str, Any]:
        measured = {"elapsed": self.elapsed, "rss_mb": self.rss_mb, "cpu_percent": self.cpu_percent}
        return {**self.child.to_json(), **measured}


def _status_cells(row: _Measured) -> list[Any]:
    child = row.child
    return [
        child.name,
        child.role,
        child.subtype or "-",
        child.number or "-",
        child.pid or "-",
        child.state,
        child.item or (f"split {child.split}" if child.split else "-"),
        f"{row.elapsed:.1f}s" if row.elapsed is not None else "-",
        child.restarts,
        f"{row.rss_mb:.1f}M" if row.rss_mb is not None else "-",
        f"{row.cpu_percent:.1f}%" if row.cpu_percent is not None else "-",
        progress.text(child.progress_done, child.progress_total) if child.progress_done is not None else "-",
    ]


def _process_trees(children: Sequence[ChildStatus]) -> dict[int, list[psutil.Process]]:
    """Each live child's process and its descendants, CPU counters primed."""
    procs: dict[int, list[psutil.Process]] = {}
    for child in children:
        if child.pid:
            try:
                proc = psutil.Process(child.pid)
                procs[child.pid] = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
    for tree in procs.values():
        for proc in tree:
            try:
                proc.cpu_percent(None)
            except psutil.Error:
                pass
    return procs


def _measure(children: Sequence[ChildStatus]) -> list[_Measured]:
    """Each child's row plus elapsed, RSS (its tree) and CPU% over a short sample (psutil)."""
    procs = _process_trees(children)
    time.sleep(0.2)
    now = time.time()
    rows = []
    for child in children:
        tree = procs.get(child.pid or -1, [])
        rss = cpu = None
        if tree:
            rss, cpu = 0.0, 0.0
            for proc in tree:
                try:
                    rss += proc.memory_info().rss / 1e6
                    cpu += proc.cpu_percent(None)
                except psutil.Error:
                    continue
        elapsed = now - child.since if child.since else None
        rows.append(_Measured(child, elapsed, rss, cpu))
    return rows


def _print_table(header: list[str], rows: list[list[Any]]) -> None:
    table = [header, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# -- configuration and the database -------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from dlsupervisor.queue import open_queue
    from dlsupervisor.store import open_store, schema

    settings = config.load(args.config)
    print(f"ok: configuration {settings.path}")
    problem = handlers.check_all(settings)
    if problem:
        raise ConfigError(problem)
    for sub in settings.subtypes:
        info = handlers.load(settings, sub)[1]
        kind = "multi-item" if info.is_multi_task else "single-item"
        print(
            f"ok: [subtype:{sub.name}] {sub.handler}: type {info.type}, sub_type {info.sub_type}, "
            f"queue {info.queue_key}, {kind}, {sub.workers} workers"
        )
    schema.verify(settings)
    print(f"ok: database {settings.database.redacted()}{_connected_with(settings)}")
    store = open_store(settings.database, timeout=5)
    try:
        if settings.redis is not None:
            work_queue = open_queue(settings, store)
            try:
                work_queue.ping()
            except QueueUnavailable as exc:
                refused = _redis_refused(settings, exc)
                if refused is None:
                    raise
                raise refused from None
            else:
                shown = _redis_connected_with(settings, work_queue)
                print(f"ok: redis {settings.redis.redacted()} ({shown})")
            finally:
                work_queue.close()
        else:
            print("ok: no [redis]: the database is the queue")
    finally:
        store.close()
    return EX_OK


def _connected_with(settings: Settings) -> str:
    """(TLS version and cipher, how verified) of a MySQL connection made now, and the store's
    driver ([database] driver); nothing on SQLite."""
    from dlsupervisor.connections import describe_mysql

    db = settings.database
    return f" ({describe_mysql(db)}; driver {db.driver})" if db.kind == "mysql" else ""


def _redis_connected_with(settings: Settings, work_queue: Any) -> str:
    """The Sentinel's current master and the TLS in use (a Redis error here: one line, by main)."""
    from dlsupervisor.connections import describe_redis

    return describe_redis(settings.redis, work_queue.client)


def _redis_refused(settings: Settings, exc: QueueUnavailable) -> ConfigError | None:
    """A Redis that answers but refuses our credentials: the url is wrong (exit 2), not down."""
    import redis

    from dlsupervisor.connections import tls_cause

    refused = tls_cause(exc)
    if refused is not None:
        reason = getattr(refused, "verify_message", "") or str(refused)
        return ConfigError(f"redis {settings.redis.redacted()}: TLS: {reason}; check ssl_ca_certs in its url")
    if not isinstance(exc.__cause__, redis.exceptions.AuthenticationError):
        return None
    reason = str(exc.__cause__).rstrip(".")
    return ConfigError(f"redis {settings.redis.redacted()}: {reason}; check the user and password in its url")


def _client(args: argparse.Namespace, *, create: bool = False) -> Client:
    """A client on a database checked first, so a missing table is one line, not a traceback;
    `create`: on SQLite make the file and tables (submit may be the very first command)."""
    from dlsupervisor.client import Client
    from dlsupervisor.store import schema

    settings = config.load(args.config)
    (schema.ensure if create else schema.verify)(settings)
    return Client(settings)


def cmd_initdb(args: argparse.Namespace) -> int:
    from dlsupervisor.store import schema

    settings = config.load(args.config)
    schema.create(settings.database)
    schema.verify(settings)  # what initdb cannot add (a dropped column) is said, not hidden
    print(f"ok: tables ready in {settings.database.redacted()}")
    return EX_OK


def cmd_submit(args: argparse.Namespace) -> int:
    if args.data is not None:
        try:
            json.loads(args.data)
        except ValueError as exc:
            raise ConfigError(f"--data is not JSON: {exc}") from None
    with _client(args, create=True) as client:
        task_id = client.submit(args.subtype, args.org, args.data, args.name)
    print(task_id)
    return EX_OK


def _status_arg(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    for value, name in STATUS_NAMES.items():
        if name.lower() == text.lower():
            return value
    raise ConfigError(
        f"--status: unknown status {text!r} (a number, or one of {', '.join(STATUS_NAMES.values())})"
    )


def cmd_tasks(args: argparse.Namespace) -> int:
    status = _status_arg(args.status)
    with _client(args) as client:
        summaries = client.tasks(status, args.limit)
    if args.json:
        print(json.dumps([_task_json(s) for s in summaries], indent=2, ensure_ascii=False, default=str))
        return EX_OK
    rows = [
        [
            s.task.id,
            STATUS_NAMES.get(s.task.status, s.task.status),
            s.task.sub_type,
            s.task.org_id,
            outcomes.summarise_counts(s.counts) if s.counts else "no items",
            progress.task_text(s.task.status, s.progress),
            str(s.task.created_time)[:19],
            s.task.remark or "",
        ]
        for s in summaries
    ]
    _print_table(["ID", "STATUS", "SUB_TYPE", "ORG", "ITEMS", "PROGRESS", "CREATED", "REMARK"], rows)
    return EX_OK


def _task_json(summary: Any) -> dict[str, Any]:
    task = summary.task
    return {
        "id": task.id,
        "status": task.status,
        "status_name": STATUS_NAMES.get(task.status),
        "sub_type": task.sub_type,
        "org_id": task.org_id,
        "task_name": task.task_name,
        "remark": task.remark,
        "created_time": task.created_time,
        "items": {STATUS_NAMES.get(k, str(k)).lower(): v for k, v in summary.counts.items()},
        "progress": outcomes.summarise_counts(summary.counts) if summary.counts else "no items",
        "export_progress": progress.task_json(task.status, summary.progress),
    }


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.cancel(args.task_id)
    if status is None:
        print(f"dlsupervisor: no task {args.task_id}", file=sys.stderr)
        return EX_FAILURE
    if status != TaskStatus.CANCELLED:
        print(
            f"dlsupervisor: task {args.task_id} is {STATUS_NAMES.get(status, status)}; not cancelled",
            file=sys.stderr,
        )
        return EX_FAILURE
    print(f"task {args.task_id}: cancelled")
    return EX_OK
