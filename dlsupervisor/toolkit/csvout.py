"""One CSV file: UTF-8 (with a BOM unless told not to), RFC 4180 quoting, md5 while writing."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from dlsupervisor.toolkit.cells import TRIGGERS
from dlsupervisor.toolkit.hashing import HashingFile

BUFFER = 1 << 16


class CsvPart:
    """Rows to one .csv; `formulas=False` prefixes formula-like text with `'` (OWASP)."""

    def __init__(self, path: str, columns: Sequence[str] | None, *, bom: bool = True, formulas: bool = False):
        self.raw = HashingFile(path)
        buffered = io.BufferedWriter(self.raw, BUFFER)
        # The BOM lets Excel see UTF-8 (Chinese text); csv's default dialect is RFC 4180 (CRLF).
        self.text = io.TextIOWrapper(buffered, encoding="utf-8-sig" if bom else "utf-8", newline="")
        self._write = csv.writer(self.text).writerow
        self.formulas = formulas
        if columns:
            self.write_row(columns)

    def write_row(self, row: Iterable[Any]) -> None:
        if self.formulas:
            self._write(row)
            return
        self._write(
            ["'" + v if v.__class__ is str and v[:1] in TRIGGERS else v for v in row]  # str: not subclasses
        )

    def close(self) -> str:
        """Flush and close; the md5 of the file's bytes."""
        self.text.close()
        return self.raw.hexdigest()

    def discard(self) -> None:
        try:
            self.text.close()
        except (OSError, ValueError):
            self.raw.close()
