"""GET /d/ITEM_ID?e=EXPIRY&s=SIG: check the link, count the download, hand out the file.

The file is found from the row (its recorded storage key under the configured
storage), never from the URL: the URL only names an item id, digits.  A local file
is opened before the download is counted, so the last allowed download still has
its bytes when the scheduler deletes the file right after.
"""

from __future__ import annotations

import logging
import os
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


def local_path(root: str, key: str) -> str | None:
    """The file of `key` under `root`, None if the key would leave it (a corrupt or hostile row)."""
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, *parts))
    return path if path.startswith(base + os.sep) else None


def serve(
    settings: Settings,
    store: Any,
    name_of: Callable[[int], str | None],
    item_id: int,
    environ: Environ,
    start: StartResponse,
) -> list[bytes]:
    """The whole route: 403, 404, 410, or the file (200/206/302); `name_of`: a sub_type's subtype."""
    web = settings.web
    assert web is not None
    query = parse_qs(environ.get("QUERY_STRING", ""))
    expiry, sig = query.get("e", [""])[0], query.get("s", [""])[0]
    if not links.valid(web.secret, item_id, expiry, sig):
        return http.respond(start, 403, "bad or missing signature\n")
    row = store.download_of(item_id)
    if row is None:
        return http.respond(start, 404, "no such item\n")
    if int(expiry) < time.time() or row["status"] != ItemStatus.DONE or not row["storage_key"]:
        return http.respond(start, 410, "this link has expired\n")
    limit = settings.download_limit(name_of(row["sub_type"]))
    if settings.storage.backend == "s3":
        return _redirect(settings, store, row, limit, start)
    path = local_path(settings.storage.path, row["storage_key"])
    try:
        handle = open(path, "rb") if path else None  # noqa: SIM115 - handed to the response
    except OSError:
        handle = None
    if handle is None:
        return http.respond(start, 410, "the file is gone\n")
    counted = store.count_download(item_id, limit)
    if not counted or not counted[0]:
        handle.close()
        return http.respond(start, 410, "this link has expired\n")
    return _send(handle, row["file_name"] or os.path.basename(path), environ, start)


def _redirect(settings: Settings, store: Any, row: dict, limit: int, start: StartResponse) -> list[bytes]:
    counted = store.count_download(row["id"], limit, PRESIGN_SECONDS)
    if not counted or not counted[0]:
        return http.respond(start, 410, "this link has expired\n")
    url = open_storage(settings.storage).link(row["storage_key"], PRESIGN_SECONDS)
    return http.respond(start, 302, b"", headers=[("Location", url)])


def _send(handle: IO[bytes], file_name: str, environ: Environ, start: StartResponse) -> Any:
    size = os.fstat(handle.fileno()).st_size
    wanted = http.byte_range(environ.get("HTTP_RANGE"), size)
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Disposition", http.content_disposition(file_name)),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", "no-store"),
    ]
    if wanted is False:
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
