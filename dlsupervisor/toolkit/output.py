"""`open_output`: rows to a CSV or XLSX file, rolled over into parts, staged for storage.

The format comes from the suffix.  Past `max_rows` data rows the output rolls
over to `name-2.xlsx`, `name-3.xlsx`... (each with the header) and the result is
one zip `name.zip` of the parts.  With a `total` the rows written are reported as
progress every PROGRESS_ROWS rows, through the same limit check the parts make per
row for the roll-over, so reporting adds nothing to a row's cost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dlsupervisor.toolkit.csvout import CsvPart
from dlsupervisor.toolkit.names import part_name, sanitise, with_suffix
from dlsupervisor.toolkit.xlsxout import MAX_ROWS, XlsxPart
from dlsupervisor.toolkit.zipstream import ZipStream

Result = tuple[str, str, str]
Stage = Callable[[str, str, str], Result]  # (path, file_name, md5) -> (url, md5, file_name)
Reporter = Callable[[int, int | None], None]  # (done, total): the handler's self.progress
PROGRESS_ROWS = 1000  # rows between reports; the master writes at most once a second anyway


def part_class(file_name: str) -> type[CsvPart] | type[XlsxPart]:
    suffix = os.path.splitext(file_name)[1].lower()
    if suffix == ".csv":
        return CsvPart
    if suffix == ".xlsx":
        return XlsxPart
    shown = suffix or "(no suffix)"
    raise ValueError(f"open_output: {file_name!r}: unknown format {shown!r}; use .csv or .xlsx")


class Output:
    """A context manager: on success the file is staged and `result` is (url, md5, file_name);
    on an exception every part is discarded and nothing reaches storage."""

    def __init__(
        self,
        directory: str,
        file_name: str,
        stage: Stage,
        *,
        columns: Sequence[str] | None = None,
        total: int | None = None,
        max_rows: int | None = None,
        bom: bool = True,
        formulas: bool = False,
        progress: Reporter | None = None,
    ) -> None:
        """`progress` (with `total`): where the rows written are reported as they go."""
        self.name = sanitise(file_name)
        self.kind = part_class(self.name)
        limit = MAX_ROWS if self.kind is XlsxPart else 0
        if max_rows is not None:
            if max_rows < 1:
                raise ValueError("open_output: max_rows must be >= 1")
            limit = min(max_rows, limit) if limit else max_rows
        self.max_rows = limit or -1  # -1: no limit (write_row compares for equality)
        self.directory, self.stage = directory, stage
        self.columns, self.total, self.options = columns, total, {"bom": bom, "formulas": formulas}
        self.done_parts: list[str] = []
        self.rows_before = 0  # data rows in the parts already closed
        self._result: Result | None = None
        self.report = progress if total is not None else None
        self.next_report = -1  # the row count of the next report; -1: none
        if self.report is not None:
            self.report(0, total)  # before any file: a bad total raises with nothing to discard
            self.next_report = PROGRESS_ROWS
        self._open_part()

    def _open_part(self) -> None:
        self.path = os.path.join(self.directory, part_name(self.name, len(self.done_parts) + 1))
        self.part = self.kind(
            self.path, self.columns, limit=self._part_limit(), on_full=self._full, **self.options
        )
        # Rows go straight to the part (one call per row); at its limit it hands the row to _full.
        self.write_row = self.part.write_row

    def _part_limit(self) -> int:
        """The current part's data rows before it calls _full: max_rows, or fewer to report on the way."""
        if self.next_report < 0:
            return self.max_rows
        until = self.next_report - self.rows_before
        return until if self.max_rows < 0 else min(self.max_rows, until)

    def write_row(self, row: Iterable[Any]) -> None:
        """One data row: a sequence of cells (str, int, float, Decimal, bool, date, datetime, None)."""
        self.part.write_row(row)

    def write_rows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.write_row(row)

    @property
    def rows(self) -> int:
        return self.rows_before + self.part.rows

    def _full(self, row: Iterable[Any]) -> None:
        """The part reached its limit before `row`: report progress, roll over, or both."""
        if self.rows == self.next_report and self.report is not None:
            self.report(self.rows, self.total)
            self.next_report += PROGRESS_ROWS
        if self.part.rows == self.max_rows:
            self.rows_before += self.part.rows
            self.part.close()
            self.done_parts.append(self.path)
            self._open_part()
        else:
            self.part.limit = self._part_limit()
        self.part.write_row(row)

    def close(self) -> Result:
        """Finish the file (or the zip of its parts) and stage it; returns the result."""
        if self._result is not None:
            return self._result
        if self.report is not None:
            self.report(self.rows, self.total)
        md5 = self.part.close()
        if not self.done_parts:
            self._result = self.stage(self.path, self.name, md5)
            return self._result
        paths = [*self.done_parts, self.path]
        zip_name = with_suffix(self.name, ".zip")
        bundle = ZipStream(os.path.join(self.directory, f".{zip_name}"))
        for path in paths:
            bundle.add(os.path.basename(path), path)
        md5 = bundle.close()
        for path in paths:
            os.remove(path)
        self._result = self.stage(bundle.raw.path, zip_name, md5)
        return self._result

    def discard(self) -> None:
        self.part.discard()
        for path in [*self.done_parts, self.path]:
            if os.path.exists(path):
                os.remove(path)

    @property
    def result(self) -> Result:
        """(url, md5, file_name), what `export` returns."""
        if self._result is None:
            raise RuntimeError("open_output: the result exists once the `with` block has ended")
        return self._result

    def __enter__(self) -> Output:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
