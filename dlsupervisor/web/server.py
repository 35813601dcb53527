"""The web child's server: waitress (pure-Python, threaded, production WSGI; README says why)."""

from __future__ import annotations

from typing import Any

from dlsupervisor.config import Settings
from dlsupervisor.web.app import WebApp

THREADS = 8
EXTRA = "web"


def make_server(settings: Settings, **options: Any) -> Any:
    """A waitress server bound to [web] listen (port 0 in tests: any free port)."""
    try:
        from waitress.server import create_server
    except ImportError:
        raise RuntimeError(f"[web] needs waitress: pip install 'dlsupervisor[{EXTRA}]'") from None
    web = settings.web
    assert web is not None
    options = {"host": web.host, "port": web.port, "threads": THREADS, "ident": "dlsupervisor", **options}
    return create_server(WebApp(settings), clear_untrusted_proxy_headers=True, **options)
