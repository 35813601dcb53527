"""The web child's server: waitress (pure-Python, threaded, production WSGI; README says why),
its file-wrapper bodies sent with sendfile (web/sendfile.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from dlsupervisor.config import Settings
from dlsupervisor.web.app import WebApp

THREADS = 32  # each serving thread has its own database connection (bench/README.md: why 32)
EXTRA = "web"
QUEUE_LOG_EVERY = 60.0  # seconds between two of waitress's "Task queue depth" warnings

log = logging.getLogger("dlsupervisor.web")


def make_server(settings: Settings, **options: Any) -> Any:
    """A waitress server bound to [web] listen (port 0 in tests: any free port)."""
    try:
        from waitress.server import BaseWSGIServer, create_server
    except ImportError:
        raise RuntimeError(f"[web] needs waitress: pip install 'dlsupervisor[{EXTRA}]'") from None
    web = settings.web
    assert web is not None
    if web.one_cpu:
        keep_on_one_cpu()
    options = {"host": web.host, "port": web.port, "threads": THREADS, "ident": "dlsupervisor", **options}
    sockets: dict[int, Any] = {}
    server = create_server(WebApp(settings), map=sockets, clear_untrusted_proxy_headers=True, **options)
    from dlsupervisor.web import sendfile

    missing = sendfile.hooks_missing()
    if missing:
        log.warning("web: files are copied, not sendfile'd: this waitress lacks %s", ", ".join(missing))
    else:
        for listener in sockets.values():  # one per listening socket; channels are made on accept
            if isinstance(listener, BaseWSGIServer):
                listener.channel_class = sendfile.SendfileChannel
    quiet_queue_warnings()
    return server


def keep_on_one_cpu() -> None:
    """Keep this process's threads, the server's to come, on the CPU it runs on (with one
    CPU allowed there is nothing to do).

    The threads share one GIL, released around every recv, query and sendfile.  On two
    CPUs each release wakes a waiting thread on the other one, an inter-processor wake-up
    and a context switch: under 16 clients that cost half the web child's CPU (0.80 ms a
    1 MB download against 0.42 on one CPU; bench/README.md, Web downloads).  On one CPU
    the GIL is handed over without waking another; the Python work could not run on two
    at once anyway.  The workers and the scheduler, other processes, still use every CPU.
    """
    allowed = getattr(os, "sched_getaffinity", lambda _pid: set())(0)
    if len(allowed) < 2:
        return
    cpu = current_cpu()
    cpu = cpu if cpu in allowed else min(allowed)
    for thread in _threads():  # those started already (the parent watch); later ones inherit it
        with contextlib.suppress(ProcessLookupError):  # ended since
            os.sched_setaffinity(thread, {cpu})
    log.info("web: its threads kept on CPU %d of %d ([web] one_cpu)", cpu, len(allowed))


def _threads() -> list[int]:
    """This process's thread ids (Linux); [0], the calling thread, where /proc has none."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def current_cpu() -> int | None:
    """The CPU this thread last ran on: field 39 of its /proc stat (Linux), None elsewhere."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        return int(fields[36])  # the fields after the name start at field 3
    except (OSError, ValueError, IndexError):
        return None


class EveryFilter(logging.Filter):
    """Lets one record through every `seconds`, saying how many it held back since.

    waitress warns "Task queue depth is N" for every request that waits for a thread: under
    a burst of downloads that is a line per request in the daemon's log."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._lock = threading.Lock()
        self._next = 0.0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return False
            held, self._held, self._next = self._held, 0, now + self.seconds
        if held:
            record.msg = f"{record.msg} ({held} more since the last of these)"
        return True


def quiet_queue_warnings() -> None:
    """At most one of waitress's queue-depth warnings a minute (once per logger, however many servers)."""
    queue = logging.getLogger("waitress.queue")
    if not any(isinstance(f, EveryFilter) for f in queue.filters):
        queue.addFilter(EveryFilter(QUEUE_LOG_EVERY))
