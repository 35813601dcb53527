"""The web child's server: waitress (pure-Python, threaded, production WSGI; README says why),
its file-wrapper bodies sent with sendfile (web/sendfile.py)."""

from __future__ import annotations

import logging
from typing import Any

from dlsupervisor.config import Settings
from dlsupervisor.web.app import WebApp

THREADS = 8
EXTRA = "web"

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
    return server
