"""The user API: one DownloadTaskBase subclass per kind of export (contract.md §6).

Nothing here does I/O itself: the supervisor constructs handlers in worker processes
and calls their hooks; `start()` is the seed's standalone entry point; the toolkit
methods (contract.md §7) delegate to the toolkit the worker attached (toolkit/session.py).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from dlsupervisor import entrypoints
from dlsupervisor.model import DownloadItem, DownloadTaskMain
from dlsupervisor.toolkit import session
from dlsupervisor.toolkit.output import Output
from dlsupervisor.toolkit.zipstream import Source


class SubTypeInfo(NamedTuple):
    """What identifies a subtype: tasks are routed by `sub_type` (the seed's key)."""

    task_name: str
    type: int
    sub_type: int
    queue_key: str
    is_multi_task: bool = False


class DownloadTaskBase:
    """Subclass it and implement `export` (and `split_task` for multi-item subtypes).

    The constructor takes the seed's arguments.  `max_job` (worker processes) and
    `timeout` (seconds one item may run, 0 = no limit) apply to `start()`, the
    standalone mode; under the daemon its [subtype:...] section decides both.
    `cron` is accepted for seed code and ignored: work is taken as it arrives.
    """

    task_info: SubTypeInfo | None = None
    timeout: float = 600.0
    _progress_sink: Callable[[int, int | None], None] | None = None  # set by the worker

    def __init__(
        self,
        task_info: SubTypeInfo | None = None,
        config_path: str | None = None,
        logger_name: str | None = None,
        max_job: int = 1,
        cron: str | None = None,
        logger: logging.Logger | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        info = task_info if task_info is not None else type(self).task_info
        if info is None:
            raise TypeError(f"{type(self).__name__} needs a SubTypeInfo (argument or class attribute)")
        self.task_info = SubTypeInfo(*info)
        self.config_path = config_path
        self.logger_name = logger_name or self.task_info.task_name
        self.max_job = max_job
        if timeout is not None:
            self.timeout = timeout
        self._logger = logger or logging.getLogger(self.logger_name)

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        """Parse and check an item's data; return None to reject the item."""
        return json.loads(data)

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple[Any, Any, Any]:
        """Produce the file; return (url, md5, file_name)."""
        raise NotImplementedError(f"{type(self).__name__}.export")

    # -- the export toolkit (contract.md §7): a hook is a loop over rows -----------------

    def open_output(
        self,
        file_name: str,
        *,
        columns: Sequence[str] | None = None,
        total: int | None = None,
        max_rows: int | None = None,
        bom: bool = True,
        formulas: bool = False,
    ) -> Output:
        """A streamed .csv or .xlsx (by suffix); `with` it, `write_row`, then return `out.result`.
        With `total` (the rows to come) it reports its rows through `self.progress`; without,
        it leaves progress to the export (a None total would turn a reported percentage into rows)."""
        return session.toolkit_of(self).open_output(
            file_name,
            columns=columns,
            total=total,
            max_rows=max_rows,
            bom=bom,
            formulas=formulas,
            progress=self.progress,
        )

    def store_file(self, source: str | os.PathLike[str] | bytes, file_name: str) -> tuple[str, str, str]:
        """A file made another way (a path, or bytes): returns (url, md5, file_name)."""
        return session.toolkit_of(self).store_file(source, file_name)

    def store_zip(
        self, file_name: str, sources: Iterable[tuple[str, Source]], *, force_zip64: bool = False
    ) -> tuple[str, str, str]:
        """One zip, streamed, of (entry name, path | bytes | iterable of bytes) pairs."""
        return session.toolkit_of(self).store_zip(file_name, sources, force_zip64=force_zip64)

    def progress(self, done: int, total: int | None = None) -> None:
        """Report how far the current item's export is: `done` rows (or units) of `total`
        (None: unknown).  Cheap enough to call per row: it writes shared memory only; the
        master records it at most once a second (contract.md §9)."""
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise ValueError(f"progress: done must be a non-negative int, not {done!r}")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"progress: total must be a non-negative int or None, not {total!r}")
        if self._progress_sink is not None:
            self._progress_sink(done, total)

    def bind_progress(self, sink: Callable[[int, int | None], None] | None) -> None:
        """Where `progress` goes: the worker's slot (worker.py); None when no worker runs it."""
        self._progress_sink = sink

    def split_task(self, task: DownloadTaskMain) -> list[DownloadItem]:
        """Multi-item subtypes: return the items (DownloadItem) a task is made of."""
        raise NotImplementedError(f"{type(self).__name__}.split_task")

    def start(self) -> None:
        """The seed's entry point: supervise `max_job` workers of this subtype from this
        process, as the daemon would, until Ctrl-C or SIGTERM (standalone.py).

        Reached by name (entrypoints.py): the runtime imports this module, not the reverse."""
        entrypoints.resolve(entrypoints.STANDALONE_HANDLER)(self)
