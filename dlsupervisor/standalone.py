"""Standalone mode: the seed's two scripts, run as written (contract.md §6).

Teams on duyan-download-task run one scheduler script and one script per
subtype.  They keep them:

- `DownloadTaskScheduler(config_path, logger_name).start()` runs the scheduler
  loop in the calling process, with the daemon's election, so a standalone
  scheduler and a daemon's scheduler never both work the same database;
- `Handler(info, config_path, logger_name).start()` runs the daemon's master in
  the calling process, forking `max_job` workers of that one subtype that
  inherit the script's handler instance: timeouts, restarts with backoff,
  heartbeats, slots, titles and the drain on stop are the daemon's own.

Neither needs a [subtype:...] section: workers register their subtype and the
scheduler routes by those registrations, as the seed did.  Neither writes a
pidfile (several scripts share one config.ini), and both log to stderr unless
[supervisor] log_file says otherwise.  Ctrl-C, SIGTERM or a terminal hang-up
stop them cleanly, and start() returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator

import setproctitle

from dlsupervisor import config, logsetup
from dlsupervisor.child import BACKOFF_BASE
from dlsupervisor.config import Settings, SubtypeSettings
from dlsupervisor.election import open_election
from dlsupervisor.errors import EX_OK, EX_USAGE, ConfigError, StopNow
from dlsupervisor.queue import open_queue
from dlsupervisor.scheduler import Scheduler
from dlsupervisor.spawn import TITLE
from dlsupervisor.store import open_store
from dlsupervisor.supervisor import Master, Phase
from dlsupervisor.task import DownloadTaskBase

log = logging.getLogger("dlsupervisor.standalone")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


# -- the scheduler script ---------------------------------------------------------------


class DownloadTaskScheduler:
    """The seed's scheduler: dispatch, splits, roll-up, expiry, cancels and recovery for
    every subtype with live workers, in this process, until Ctrl-C or SIGTERM.

    `logger_name` names nothing on disk any more (logs go to stderr, or to
    [supervisor] log_file); the seed called it `log_path`, which is accepted too.
    `cron` is accepted for seed code and ignored: a pass runs every
    [scheduler] poll_interval.
    """

    def __init__(
        self,
        config_path: str,
        logger_name: str = "download_task_scheduler",
        cron: str | None = None,
        *,
        log_path: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.logger_name = log_path or logger_name
        self.cron = cron

    def start(self) -> None:
        settings = load_settings(self.config_path)
        logsetup.configure(settings.supervisor.log_level, settings.supervisor.log_file, "scheduler")
        with titled(f"{TITLE} scheduler"), stop_signals() as stop:
            log.info("standalone scheduler: started (pid %d, config %s)", os.getpid(), settings.path)
            run_scheduler(settings, stop)
        log.info("standalone scheduler: %s: stopped", stop.reason)


@dataclasses.dataclass
class StopFlag:
    """Set by the stop signals' handler, read by the scheduler loop."""

    requested: bool = False
    reason: str = ""


@contextlib.contextmanager
def stop_signals() -> Iterator[StopFlag]:
    """The daemon's signal meanings, for a loop with no children: SIGINT, SIGTERM and SIGHUP
    stop it after its pass, a second one (or SIGQUIT) at once; SIGUSR1 reopens the log
    file.  A SIGHUP ignored when the script started (nohup) stays ignored."""
    stop = StopFlag()

    def on_stop(signum: int, frame: object) -> None:
        again, stop.requested = stop.requested, True
        stop.reason = stop.reason or signal.Signals(signum).name
        if again or signum == signal.SIGQUIT:
            raise StopNow()

    handlers = {signum: on_stop for signum in STOP_SIGNALS}
    handlers[signal.SIGUSR1] = lambda signum, frame: logsetup.reopen()
    previous = {}
    for signum, handler in handlers.items():
        if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield stop
    except StopNow:
        pass  # the loop's own finally blocks have released the election and connections
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def run_scheduler(settings: Settings, stop: StopFlag) -> None:
    """Scheduler passes until `stop`.  A crash is logged and the loop started again, with
    the daemon's backoff when it keeps crashing young, as the master restarts its child."""
    conf = settings.supervisor
    delay = 0.0
    while not stop.requested:
        started = time.monotonic()
        try:
            run_scheduler_once(settings, stop)
        except Exception:
            young = time.monotonic() - started < conf.min_uptime
            delay = min(max(delay * 2, BACKOFF_BASE), conf.max_backoff) if young else 0.0
            log.exception("standalone scheduler: crashed; restarting in %gs", delay)
            pause(delay, stop)


def run_scheduler_once(settings: Settings, stop: StopFlag) -> None:
    store = open_store(settings.database)
    work_queue = open_queue(settings, store)
    try:
        scheduler = Scheduler(settings, store, work_queue, open_election(settings, store, work_queue))
        scheduler.run(lambda: stop.requested)
    finally:
        work_queue.close()
        store.close()


def pause(seconds: float, stop: StopFlag) -> None:
    deadline = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


# -- a task script ----------------------------------------------------------------------


def run_handler(handler: DownloadTaskBase) -> None:
    """DownloadTaskBase.start(): the daemon's master for this one handler, in this process.

    The process is the user's script, so it may hold the handler: its workers
    inherit the instance through fork instead of importing it (architecture.md, invariant 3
    protects a master from user code it would otherwise never run).
    """
    settings = load_settings(handler.config_path)
    sub = handler_subtype(handler)
    with private_run_dir() as run_dir:
        supervisor = dataclasses.replace(settings.supervisor, run_dir=run_dir)
        settings = dataclasses.replace(settings, supervisor=supervisor, subtypes=(sub,))
        logsetup.configure(supervisor.log_level, supervisor.log_file, "master")
        info = handler.task_info
        log.info(
            "standalone: %s (type %s, sub_type %s, queue %s, %s): %d worker(s), timeout %gs",
            sub.name,
            info.type,
            info.sub_type,
            info.queue_key,
            "multi-item" if info.is_multi_task else "single-item",
            sub.workers,
            sub.timeout,
        )
        with titled(None):
            status = StandaloneMaster(settings, handlers={sub.name: handler}, scheduler=False).run()
    if status != EX_OK:
        raise SystemExit(status)


def handler_subtype(handler: DownloadTaskBase) -> SubtypeSettings:
    """The [subtype:...] section a standalone script goes without, read off its handler."""
    workers = handler.max_job or 1
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"max_job must be a whole number >= 1, got {handler.max_job!r}")
    timeout = float(handler.timeout or 0)
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds (0 = no limit), got {handler.timeout!r}")
    cls = type(handler)
    return SubtypeSettings(
        name=handler.task_info.task_name,
        handler=f"{cls.__module__}:{cls.__qualname__}",
        workers=workers,
        timeout=timeout,
    )


class StandaloneMaster(Master):
    """The daemon's master inside a user's script.

    The script, not the file, defines the subtype, so there is nothing to reload:
    SIGHUP (the terminal went away) drains like SIGTERM -- unless SIGHUP was
    ignored when the script started (nohup), and then it stays ignored.  When it
    is done, the signal handlers it replaced are put back.
    """

    def start(self) -> None:
        hup_ignored = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        super().start()
        if hup_ignored:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def on_signal(self, signum: int, now: float) -> None:
        if signum != signal.SIGHUP:
            super().on_signal(signum, now)
        elif self.phase is Phase.RUNNING:
            self.begin_drain(now, "SIGHUP")

    def finish(self) -> None:
        super().finish()
        self.inbox.uninstall()


# -- shared -----------------------------------------------------------------------------


def load_settings(config_path: str | None) -> Settings:
    """The file as the daemon reads it, except that the application's own sections are
    allowed beside ours; a bad file ends the script with one line, exit 2."""
    try:
        if not config_path:
            raise ConfigError("standalone mode needs the path of a config file (config_path)")
        return config.load(config_path, foreign_sections=True)
    except ConfigError as exc:
        print(f"dlsupervisor: {exc}", file=sys.stderr)
        raise SystemExit(EX_USAGE) from None


@contextlib.contextmanager
def private_run_dir() -> Iterator[str]:
    """A run directory of this script's own, gone when it stops.

    /run/dlsupervisor (the daemon's default) is seldom writable by a script's user,
    and one shared directory would mix the status files of scripts sharing a config.
    """
    path = tempfile.mkdtemp(prefix="dlsupervisor-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def titled(title: str | None) -> Iterator[None]:
    """Set the process title (None: leave it to the code inside); restore it after."""
    before = setproctitle.getproctitle()
    if title is not None:
        setproctitle.setproctitle(title)
    try:
        yield
    finally:
        setproctitle.setproctitle(before)
