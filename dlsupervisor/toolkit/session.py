"""The toolkit a worker attaches to its handler: one item's scratch directory, its staged files,
and the commit that moves or uploads them only once the export has succeeded.

Nothing is put while the hook runs: `stage` returns the url the file will have,
and `commit` (outcomes.py, after a good result) records and puts every staged
file.  An exception, a timeout or a kill therefore leaves nothing in storage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dlsupervisor.errors import DlsError
from dlsupervisor.model import DownloadItem
from dlsupervisor.storage.base import MAX_LINK_SECONDS, Storage
from dlsupervisor.storage.config import StorageSettings
from dlsupervisor.storage.open import open_storage
from dlsupervisor.toolkit import tempdir
from dlsupervisor.toolkit.hashing import HashingFile
from dlsupervisor.toolkit.names import sanitise
from dlsupervisor.toolkit.output import Output, Result
from dlsupervisor.toolkit.zipstream import Source, ZipStream
from dlsupervisor.web import links
from dlsupervisor.web.settings import WebSettings

log = logging.getLogger("dlsupervisor.worker")

ATTRIBUTE = "_dlsupervisor_toolkit"
Recorder = Callable[[int, str, int], Any]  # (item_id, storage_key, file_ttl): store.record_file
DEFAULT_TTL = 259200
CHUNK = 1 << 20


class Toolkit:
    def __init__(
        self,
        storage: StorageSettings,
        file_ttl: int = DEFAULT_TTL,
        recorder: Recorder | None = None,
        web: WebSettings | None = None,
    ) -> None:
        """`web`: with a [web] public_url, urls are signed links to the web child (contract.md §8)."""
        self.settings = storage
        self.web = web
        self.file_ttl = file_ttl
        self.recorder = recorder
        self._storage: Storage | None = None
        self.item: DownloadItem | None = None
        self.staged: list[tuple[str, str]] = []  # (path in the scratch directory, key)
        self._scratch: str | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    # -- one item ----------------------------------------------------------------------

    def scratch(self) -> str:
        """This item's directory inside the worker's private one, made on first use."""
        if self.item is None:
            raise RuntimeError(
                "the export toolkit works inside export() as a worker calls it "
                "(tests: with dlsupervisor.toolkit.session.exporting(handler, item): ...)"
            )
        if self._scratch is None:
            worker = tempdir.worker_dir(self.settings, os.getpid())
            self._scratch = tempdir.fresh(os.path.join(worker, f"item-{self.item.id}"))
        return self._scratch

    def key(self, file_name: str) -> str:
        item = self.item
        assert item is not None
        return f"{self.settings.prefix}{item.org_id}/{item.task_id}/{item.id}/{file_name}"

    def link_seconds(self) -> int:
        """Until the item's expire_time (UTC, as the store keeps it) or file_ttl; at most 7 days."""
        expires = self.item.expire_time if self.item is not None else None
        seconds = float(self.file_ttl)
        if isinstance(expires, dt.datetime):
            now = dt.datetime.now(dt.timezone.utc)
            when = expires if expires.tzinfo else expires.replace(tzinfo=dt.timezone.utc)
            seconds = (when - now).total_seconds()
        return int(max(60, min(seconds, MAX_LINK_SECONDS)))

    def stage(self, path: str, file_name: str, md5: str) -> Result:
        """Keep a finished file for the commit; its url is known now (a key, a presigned GET)."""
        key = self.key(file_name)
        self.staged.append((path, key))
        web = self.web
        if web is not None and web.public_url and self.item is not None and self.item.id is not None:
            url = links.signed_url(web.public_url, web.secret, self.item.id, self.link_seconds())
            return url, md5, file_name
        return self.storage.link(key, self.link_seconds()), md5, file_name

    def commit(self) -> None:
        """The export succeeded: record each file (so expiry can delete it), then put it."""
        for path, key in self.staged:
            if self.recorder is not None and self.item is not None:
                self._record(self.item.id, key)
            self.storage.put(path, key)
        self.staged = []

    def _record(self, item_id: int, key: str) -> None:
        """An outage fails the item (DlsError); a missing table (initdb not rerun) only means
        the file will not be deleted on expiry: said once, then files are put unrecorded."""
        assert self.recorder is not None
        try:
            self.recorder(item_id, key, self.file_ttl)
        except DlsError:
            raise
        except Exception as exc:
            log.warning("stored files are not tracked for deletion (run dlsupervisor initdb): %s", exc)
            self.recorder = None

    def end(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self.item, self.staged, self._scratch = None, [], None

    # -- what the hook calls (DownloadTaskBase delegates here) ---------------------------

    def open_output(self, file_name: str, **options: Any) -> Output:
        return Output(self.scratch(), file_name, self.stage, **options)

    def store_file(self, source: str | os.PathLike[str] | bytes, file_name: str) -> Result:
        name = sanitise(file_name)
        target = HashingFile(os.path.join(self.scratch(), f".file-{len(self.staged)}"))
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                target.write(source)
            else:
                with open(source, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        target.write(chunk)
        finally:
            target.close()
        return self.stage(target.path, name, target.hexdigest())

    def store_zip(
        self, file_name: str, sources: Iterable[tuple[str, Source]], *, force_zip64: bool = False
    ) -> Result:
        name = sanitise(file_name)
        if not name.lower().endswith(".zip"):
            name += ".zip"
        bundle = ZipStream(os.path.join(self.scratch(), f".zip-{len(self.staged)}"), force_zip64=force_zip64)
        try:
            for entry, source in sources:
                bundle.add(entry, source)
        except BaseException:
            bundle.discard()
            raise
        return self.stage(bundle.raw.path, name, bundle.close())


def attach(
    handler: Any,
    storage: StorageSettings,
    file_ttl: int,
    recorder: Recorder | None,
    web: WebSettings | None = None,
) -> Toolkit:
    """The worker's toolkit for `handler` (Worker.__init__)."""
    toolkit = Toolkit(storage, file_ttl, recorder, web)
    setattr(handler, ATTRIBUTE, toolkit)
    return toolkit


def toolkit_of(handler: Any) -> Toolkit:
    """The attached toolkit, or (a handler used on its own) one on the default local storage."""
    toolkit = getattr(handler, ATTRIBUTE, None)
    if toolkit is None:
        from dlsupervisor.storage.config import build

        toolkit = attach(handler, build({})[0], DEFAULT_TTL, None)
    return toolkit


@contextlib.contextmanager
def exporting(handler: Any, item: DownloadItem) -> Iterator[Toolkit]:
    """The scope of one export: files staged inside it are committed only by `commit()`."""
    toolkit = toolkit_of(handler)
    toolkit.end()
    toolkit.item = item
    try:
        yield toolkit
    finally:
        toolkit.end()
