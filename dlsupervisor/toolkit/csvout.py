"""One CSV file: UTF-8 (with a BOM unless told not to), RFC 4180 quoting, md5 while writing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dlsupervisor.toolkit.cells import TRIGGERS
from dlsupervisor.toolkit.hashing import HashingFile

BUFFER = 1 << 16


class CsvPart:
    """Rows to one .csv; `formulas=False` prefixes formula-like text with `'` (OWASP)."""

    def __init__(
        self,
        path: str,
        columns: Sequence[str] | None,
        *,
        bom: bool = True,
        formulas: bool = False,
        limit: int = -1,
        on_full: Callable[[Any], None] | None = None,
    ):
        self.raw = HashingFile(path)
        buffered = io.BufferedWriter(self.raw, BUFFER)
        # The BOM lets Excel see UTF-8 (Chinese text); csv's default dialect is RFC 4180 (CRLF).
        # Written by hand: the utf-8-sig codec is Python code, called on every write.
        self.text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
        if bom:
            self.text.write("\ufeff")
        self._write = csv.writer(self.text).writerow
        self.formulas = formulas
        if formulas:
            self.write_row = self._write_formulas  # type: ignore[method-assign]
        if columns:
            self._write(columns)
        self.rows, self.limit, self.on_full = 0, limit, on_full  # data rows; at `limit`, on_full(row)

    def write_row(self, row: Iterable[Any]) -> None:
        if self.rows == self.limit and self.on_full is not None:
            return self.on_full(row)  # the next part takes this row
        if type(row) is not list and type(row) is not tuple:
            row = list(row)  # a generator is read once
        # Most rows have no formula-like text: scan, rebuild only if one has.  Every trigger
        # sorts before "A", so `value < "A"` (no allocation) passes over most text cheaply.
        for value in row:
            if isinstance(value, str) and value < "A" and value[:1] in TRIGGERS:
                row = ["'" + v if isinstance(v, str) and v[:1] in TRIGGERS else v for v in row]
                break
        self._write(row)
        self.rows += 1

    def _write_formulas(self, row: Iterable[Any]) -> None:
        """`write_row` with `formulas=True`: cells as they are."""
        if self.rows == self.limit and self.on_full is not None:
            return self.on_full(row)
        self._write(row)
        self.rows += 1

    def close(self) -> str:
        """Flush and close; the md5 of the file's bytes."""
        self.text.close()
        return self.raw.hexdigest()

    def discard(self) -> None:
        try:
            self.text.close()
        except (OSError, ValueError):
            self.raw.close()
