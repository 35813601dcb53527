"""Small WSGI helpers: responses, headers and the Range and Content-Disposition values."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

COOKIE = "dlsupervisor_token"  # the login form's cookie: the token itself, HttpOnly
StartResponse = Callable[..., Any]
Environ = dict[str, Any]
REASONS = MappingProxyType(
    {
        200: "OK",
        206: "Partial Content",
        302: "Found",
        303: "See Other",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        410: "Gone",
        416: "Range Not Satisfiable",
        503: "Service Unavailable",
    }
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def respond(
    start_response: StartResponse,
    code: int,
    body: bytes | str = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    data = body.encode() if isinstance(body, str) else body
    start_response(
        f"{code} {REASONS[code]}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers],
    )
    return [data]


def respond_json(start_response: StartResponse, code: int, value: Any) -> list[bytes]:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return respond(start_response, code, text, "application/json; charset=utf-8")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(first, last) of a single `bytes=` range; None: no (usable) Range, the whole file;
    False: not satisfiable.  Several ranges are answered with the whole file (RFC 9110 allows it)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


def content_disposition(file_name: str) -> str:
    """`attachment` with an ASCII fallback and the UTF-8 name (RFC 6266, RFC 5987)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in file_name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"
