"""GET /d/ITEM_ID?e=EXPIRY&s=SIG: check the link, count the download, hand out the file.

The file is found from the row (its recorded storage key under the configured
storage), never from the URL: the URL only names an item id, digits.  A local file
is opened before the download is counted, so the last allowed download still has
its bytes when the scheduler deletes the file right after.

A download costs two round trips to the database: the item's read and its count.  The
read is kept for ROW_SECONDS (`Rows`), so another download of the same item within them
is the count alone; the count's own condition (the item still DONE, below its limit)
decides as before, so a stale read never serves an item that expired since.  A HEAD,
never counted, always reads the item.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import parse_qs

from dlsupervisor.config import Settings
from dlsupervisor.model import ItemStatus
from dlsupervisor.storage.open import open_storage
from dlsupervisor.web import http, links
from dlsupervisor.web.http import Environ, StartResponse

log = logging.getLogger("dlsupervisor.web")

PRESIGN_SECONDS = 300  # the life of the presigned url an s3 download redirects to
BLOCK = 1 << 16
ROW_SECONDS = 5.0  # how long a DONE item's read (file, name, sub_type) serves its downloads
ROWS_MAX = 4096  # items kept at most; past it the oldest half is dropped


class Rows:
    """DONE items' rows as download_of read them, each for ROW_SECONDS (shared by the threads)."""

    def __init__(self, seconds: float = ROW_SECONDS) -> None:
        self.seconds = seconds
        self._rows: dict[int, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, item_id: int) -> dict[str, Any] | None:
        found = self._rows.get(item_id)
        return found[1] if found is not None and time.monotonic() - found[0] < self.seconds else None

    def put(self, item_id: int, row: dict[str, Any]) -> None:
        with self._lock:
            if len(self._rows) >= ROWS_MAX:  # insertion order: the oldest first
                for old in list(self._rows)[: ROWS_MAX // 2]:
                    del self._rows[old]
            self._rows[item_id] = (time.monotonic(), row)

    def drop(self, item_id: int) -> None:
        with self._lock:
            self._rows.pop(item_id, None)


@functools.lru_cache(maxsize=8)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


def local_path(root: str, key: str) -> str | None:
    """The file of `key` under `root`, None if the key would leave it (a corrupt or hostile row)."""
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    base = _real_root(root)
    path = os.path.realpath(os.path.join(base, *parts))
    return path if path.startswith(base + os.sep) else None


def serve(
    settings: Settings,
    store: Any,
    name_of: Callable[[int], str | None],
    item_id: int,
    environ: Environ,
    start: StartResponse,
    rows: Rows | None = None,
) -> list[bytes]:
    """The whole route: 403, 404, 410, or the file (200/206/302); `name_of`: a sub_type's subtype;
    `rows`: recent reads of DONE items, to skip the read (None: always read)."""
    web = settings.web
    assert web is not None
    query = parse_qs(environ.get("QUERY_STRING", ""))
    expiry, sig = query.get("e", [""])[0], query.get("s", [""])[0]
    if not links.valid(web.secret, item_id, expiry, sig):
        return http.respond(start, 403, "bad or missing signature\n")
    head = environ.get("REQUEST_METHOD") == "HEAD"  # never counted: no count checks a kept read
    row = rows.get(item_id) if rows is not None and not head and int(expiry) >= time.time() else None
    if row is not None:
        served = _serve_row(settings, store, name_of, row, environ, start)
        if served is not None:
            return served
        rows.drop(item_id)  # its file did not open: read the item again
    row = store.download_of(item_id)
    if row is None:
        return http.respond(start, 404, "no such item\n")
    if int(expiry) < time.time() or row["status"] != ItemStatus.DONE or not row["storage_key"]:
        return http.respond(start, 410, "this link has expired\n")
    if rows is not None:
        rows.put(item_id, row)
    served = _serve_row(settings, store, name_of, row, environ, start)
    return served if served is not None else http.respond(start, 410, "the file is gone\n")


def _serve_row(
    settings: Settings,
    store: Any,
    name_of: Callable[[int], str | None],
    row: dict[str, Any],
    environ: Environ,
    start: StartResponse,
) -> list[bytes] | None:
    """Count and serve the download of a DONE item's row (404/410 if the count says so); None:
    its local file does not open (nothing counted)."""
    limit = settings.download_limit(name_of(row["sub_type"]))
    if settings.storage.backend == "s3":
        return _redirect(settings, store, row, limit, environ, start)
    path = local_path(settings.storage.path, row["storage_key"])
    try:
        handle = open(path, "rb") if path else None  # noqa: SIM115 - handed to the response
    except OSError:
        handle = None
    if handle is None:
        return None
    name, size = row["file_name"] or os.path.basename(path), os.fstat(handle.fileno()).st_size
    if environ.get("REQUEST_METHOD") == "HEAD":  # a GET's headers; no file sent, none counted
        handle.close()
        return _send(None, size, name, environ, start)
    refused = _refused(store.count_download(row["id"], limit), start)
    if refused is not None:
        handle.close()
        return refused
    return _send(handle, size, name, environ, start)


def _refused(counted: tuple[bool, int, int] | None, start: StartResponse) -> list[bytes] | None:
    """The 404 or 410 of a download the count did not take; None: counted, serve it."""
    if counted is None:
        return http.respond(start, 404, "no such item\n")
    if not counted[0]:
        return http.respond(start, 410, "this link has expired\n")
    return None


def _redirect(
    settings: Settings, store: Any, row: dict, limit: int, environ: Environ, start: StartResponse
) -> list[bytes]:
    if environ.get("REQUEST_METHOD") == "HEAD":  # nothing to redirect a HEAD to (presigned for GET)
        return http.respond(
            start,
            200,
            b"",
            headers=[("Content-Disposition", http.content_disposition(row["file_name"] or ""))],
        )
    refused = _refused(store.count_download(row["id"], limit, PRESIGN_SECONDS), start)
    if refused is not None:
        return refused
    url = open_storage(settings.storage).link(row["storage_key"], PRESIGN_SECONDS)
    return http.respond(start, 302, b"", headers=[("Location", url)])


def _send(handle: IO[bytes] | None, size: int, file_name: str, environ: Environ, start: StartResponse) -> Any:
    """The file (200, or 206 for a Range), or with no `handle` (a HEAD) only its headers."""
    wanted = http.byte_range(environ.get("HTTP_RANGE"), size)
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Disposition", http.content_disposition(file_name)),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", "no-store"),
    ]
    if wanted is False:
        if handle is not None:
            handle.close()
        return http.respond(start, 416, b"", headers=[("Content-Range", f"bytes */{size}")])
    if wanted is None:
        first, last, code = 0, size - 1, "200 OK"
        headers.append(("Content-Length", str(size)))
    else:
        first, last = wanted
        code = "206 Partial Content"
        headers.append(("Content-Length", str(last - first + 1)))
        headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
    start(code, headers)
    if handle is None:
        return [b""]
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is None:
        return _blocks(handle, first, last + 1 - first)
    handle.seek(first)  # the server's wrapper sends from here, Content-Length bytes (PEP 3333)
    return wrapper(handle, BLOCK)


def _blocks(handle: IO[bytes], offset: int, length: int) -> Iterator[bytes]:
    try:
        while length > 0:
            block = os.pread(handle.fileno(), min(BLOCK, length), offset)
            if not block:
                return
            offset += len(block)
            length -= len(block)
            yield block
    finally:
        handle.close()
