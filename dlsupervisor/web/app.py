"""The web child's WSGI application: routing, the token check, /healthz and /api.

One store per server thread (a connection is not shared between threads); the
store connects lazily and reconnects after an outage, so /healthz follows the database.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from dlsupervisor import progress
from dlsupervisor.config import Settings
from dlsupervisor.errors import QueueUnavailable, StoreUnavailable
from dlsupervisor.queue import open_queue
from dlsupervisor.registry import open_registry
from dlsupervisor.store import Store, open_store
from dlsupervisor.web import downloads, http
from dlsupervisor.web.http import Environ, StartResponse

log = logging.getLogger("dlsupervisor.web")

_DOWNLOAD = re.compile(r"^/d/(\d{1,19})$")
_TASK = re.compile(r"^/api/tasks/(\d{1,19})$")
API_LIMIT = 500
REGISTERED_AGE = 10 * 365 * 86400.0  # any registration ever made names its subtype
NAMES_FOR = 30.0  # seconds the subtype names read from the registry serve downloads


class WebApp:
    def __init__(self, settings: Settings) -> None:
        assert settings.web is not None
        self.settings = settings
        self.web = settings.web
        self._local = threading.local()
        self._names: tuple[float, dict[int, str]] | None = None  # (monotonic time read, names)
        self.rows = downloads.Rows()  # recent reads of DONE items, for their next downloads

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = open_store(self.settings.database, timeout=5.0)
        return store

    def __call__(self, environ: Environ, start: StartResponse) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if method not in ("GET", "HEAD", "POST"):
                return http.respond(start, 405, "method not allowed\n")
            if path == "/healthz":
                return self.healthz(start)
            if match := _DOWNLOAD.match(path):
                item, store, names = int(match.group(1)), self.store(), self.subtype_name
                return downloads.serve(self.settings, store, names, item, environ, start, self.rows)
            if path.startswith("/d/"):
                return http.respond(start, 404, "no such item\n")
            return self.protected(path, environ, start)
        except StoreUnavailable:
            return http.respond(start, 503, "the database is unavailable\n")

    def protected(self, path: str, environ: Environ, start: StartResponse) -> Any:
        """The routes behind the token (/, /api), and /metrics."""
        from dlsupervisor.web import dashboard, metrics

        if path == "/metrics":  # like /healthz, for the scraper: no token (contract.md §8)
            return metrics.serve(self, start)
        if path == "/login":
            return dashboard.login(self, environ, start)
        if not self.authorised(environ):
            if path.startswith("/api"):
                return http.respond(start, 401, "token required\n", headers=[("WWW-Authenticate", "Bearer")])
            return dashboard.login_form(start, 401)
        if path == "/":
            return dashboard.page(self, environ, start)
        if path == "/api/tasks":
            return http.respond_json(start, 200, self.tasks(query_of(environ)))
        if match := _TASK.match(path):
            found = self.store().web_tasks(None, None, None, 1, int(match.group(1)))
            if not found:
                return http.respond_json(start, 404, {"error": "no such task"})
            return http.respond_json(start, 200, shown(found[0]))
        return http.respond(start, 404, "not found\n")

    def authorised(self, environ: Environ) -> bool:
        """Always without a token; with one, a bearer header or the login cookie (constant time)."""
        if not self.web.token:
            return True
        given = ""
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer ") :].strip()
        else:
            cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
            given = cookie[http.COOKIE].value if http.COOKIE in cookie else ""
        return hmac.compare_digest(given.encode(), self.web.token.encode())

    def subtype_name(self, sub_type: int) -> str | None:
        """The name of a download's sub_type (its limit depends on it): the names read
        within NAMES_FOR seconds, so a download costs no registry round trip, read again
        when they do not name it (a subtype registered since)."""
        cached = self._names
        if cached is not None and time.monotonic() - cached[0] < NAMES_FOR and sub_type in cached[1]:
            return cached[1][sub_type]
        read_at = time.monotonic()
        names = self.subtype_names()
        self._names = (read_at, names)
        return names.get(sub_type)

    def subtype_names(self) -> dict[int, str]:
        """sub_type -> subtype name: the configuration's, then what workers registered
        (a handler may declare its sub_type; this child never imports handlers)."""
        registry = getattr(self._local, "registry", None)
        if registry is None:
            store = self.store()
            registry = self._local.registry = open_registry(
                self.settings, store, open_queue(self.settings, store)
            )
        try:
            names = {r.sub_type: r.name for r in registry.registrations(REGISTERED_AGE)}
        except QueueUnavailable:
            names = {}
        names.update({s.sub_type: s.name for s in self.settings.subtypes if s.sub_type is not None})
        return names

    def healthz(self, start: StartResponse) -> Any:
        try:
            self.store().ping()
        except Exception as exc:  # noqa: BLE001 - any failure to answer is "unhealthy"
            log.warning("healthz: database unavailable (%s)", type(exc).__name__)
            return http.respond(start, 503, "database unavailable\n")
        return http.respond(start, 200, "ok\n")

    def tasks(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """/api/tasks and the dashboard: filters by org, status and subtype (its section name)."""
        sub_type = None
        if query.get("subtype"):
            by_name = {name: number for number, name in self.subtype_names().items()}
            sub_type = by_name.get(query["subtype"], -1)
        limit = min(int_or(query.get("limit"), 50) or 50, API_LIMIT)
        found = self.store().web_tasks(int_or(query.get("org")), int_or(query.get("status")), sub_type, limit)
        return [shown(task) for task in found]


def shown(task: dict[str, Any]) -> dict[str, Any]:
    """A task as /api and the dashboard show it: `export_progress` per item and summed per
    task as `tasks --json` has it ({"done", "total", "text"}, or None where `tasks` shows `-`)."""
    items = [
        {**i, "export_progress": progress.item_json(i["status"], i["export_progress"])} for i in task["items"]
    ]
    return {
        **task,
        "items": items,
        "export_progress": progress.task_json(task["status"], task["export_progress"]),
    }


def query_of(environ: Environ) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}


def int_or(text: str | None, default: int | None = None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else default
