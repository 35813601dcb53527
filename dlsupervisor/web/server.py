"""The web child's server: waitress (pure-Python, threaded, production WSGI; README says why),
its file-wrapper bodies sent with sendfile (web/sendfile.py)."""

from __future__ import annotations

import logging
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
