"""GET /metrics (placeholder until the collector lands)."""

from __future__ import annotations

from typing import Any

from dlsupervisor.web import http


def serve(app: Any, start: http.StartResponse) -> Any:
    return http.respond(start, 404, "not yet\n")
