"""One CSV file: UTF-8 (with a BOM unless told not to), RFC 4180 quoting, md5 while writing.

Rows are formatted by the csv module when they are written and kept as lines; every
BATCH rows the lines are joined, encoded and written at once.  The formula check
(OWASP "CSV injection") is made on the batch's bytes, in C.  A text cell starting with
a trigger shows in its line as that trigger at a field's start: after a `,`, or at the
line's start (after the `\n` ending the line before), maybe after the `"` of a quoted
field.  `marks` maps the batch's bytes one to one, separators to S and triggers to X,
quotes dropped, and one `find` looks for "SX".  Only the rows of a batch with a mark (a
negative number is one: false alarms are fine) take the exact per-cell test and are
formatted again, from the copy of the row taken when it was written.  Text that UTF-8
cannot encode (a lone surrogate) fails the write_row or close that writes its batch.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from dlsupervisor.toolkit.cells import TRIGGERS
from dlsupervisor.toolkit.hashing import HashingFile

BATCH = 256  # rows formatted before they are checked and written (~20 KB for 10 short columns)
SEPARATOR, START, QUOTE = b"S", b"X", b'"'
MARK = SEPARATOR + START


def marks_table(triggers: frozenset[str]) -> bytes:
    """A `bytes.translate` table: `,` and `\\n` to S, a trigger but CR to X, other bytes to `.`.

    A bare CR is the end of a line (`,\\r\\n` after an empty last cell); the csv module
    quotes a cell with a CR, so `marks` marks `"\\r` instead.  Triggers must be ASCII: the
    bytes of a UTF-8 multi-byte character are never ASCII, so never taken for one.
    """
    starts = "".join(triggers).replace("\r", "").encode("ascii")
    return bytes(SEPARATOR[0] if b in b",\n" else START[0] if b in starts else 46 for b in range(256))


MARKS = marks_table(TRIGGERS)


def marks(data: bytes) -> bytes:
    """`data` a byte a byte (but its quotes, dropped): S for a separator, X for a trigger."""
    return data.replace(b'"\r', b'"=').translate(MARKS, QUOTE)


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
        self._lines: list[str] = []
        # csv's default dialect is RFC 4180 (CRLF); its writer calls `write` once a row, here
        # list.append (C): the line is kept, not written, until its batch is.
        self._format = csv.writer(SimpleNamespace(write=self._lines.append)).writerow
        self._kept: list[tuple[Any, ...]] = []  # the batch's rows, for the exact check
        self._keep = self._kept.append
        self.formulas = formulas
        if formulas:
            self.write_row = self._write_formulas  # type: ignore[method-assign]
        # The BOM lets Excel see UTF-8 (Chinese text). The header is not checked.
        head = "\ufeff" if bom else ""
        if columns:
            self._format(columns)
            head += self._lines.pop()
        if head:
            self.raw.write(head.encode())
        self.rows, self.on_full = 0, on_full  # data rows; at `limit`, on_full(row)
        self.limit = limit

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = value
        self._stop = self._next_stop()

    def _next_stop(self) -> int:
        """The row count at which write_row turns aside: the batch is full, or the limit."""
        stop = self.rows + BATCH - len(self._lines)
        if self.on_full is not None and self.rows <= self._limit < stop:
            return self._limit
        return stop

    def write_row(self, row: Iterable[Any]) -> None:
        if self.rows == self._stop:
            return self._turn(row)
        if type(row) is not tuple:
            row = tuple(row)  # a generator is read once; a list the caller reuses is copied
        self._format(row)
        self._keep(row)
        self.rows += 1

    def _write_formulas(self, row: Iterable[Any]) -> None:
        """`write_row` with `formulas=True`: cells as they are."""
        if self.rows == self._stop:
            return self._turn(row)
        self._format(row)
        self.rows += 1

    def _turn(self, row: Iterable[Any]) -> None:
        if len(self._lines) == BATCH:
            self._flush()
        if self.rows == self._limit and self.on_full is not None:
            return self.on_full(row)  # the next part takes this row
        self._stop = self._next_stop()
        self.write_row(row)

    def _flush(self) -> None:
        """Write the batch's lines, neutralising formula-like text first unless `formulas`."""
        data = "".join(self._lines).encode()
        if not self.formulas:
            marked = marks(data)
            if marked[:1] == START or MARK in marked:
                data = self._neutralised(data, marked)
            self._kept.clear()
        self.raw.write(data)
        self._lines.clear()

    def _neutralised(self, data: bytes, marked: bytes) -> bytes:
        """The batch's bytes once the rows with a mark have had the exact check."""
        lines, kept = self._lines, self._kept
        if marked.count(MARK) >= len(lines):  # a mark a row (negative numbers): check them all
            changed = False
            for index, row in enumerate(kept):
                line = self._checked(row)
                if line is not None:
                    lines[index], changed = line, True
            return "".join(lines).encode() if changed else data
        encoded = list(map(str.encode, lines))
        sizes = map(operator.sub, map(len, encoded), map(bytes.count, encoded, itertools.repeat(QUOTE)))
        ends = list(itertools.accumulate(sizes))  # each line's end in `marked` (no quotes)
        at, changed = -1 if marked[:1] == START else marked.find(MARK), False
        while True:  # at + 1: the byte a marked field starts at
            index = bisect.bisect_right(ends, at + 1)
            line = self._checked(kept[index])
            if line is not None:
                encoded[index], changed = line.encode(), True
            at = marked.find(MARK, ends[index] - 1)  # from the "\n" ending this line: the next ones
            if at < 0:
                return b"".join(encoded) if changed else data

    def _checked(self, row: tuple[Any, ...]) -> str | None:
        """The row's line with its formula-like text neutralised; None if it has none.  The
        check made on every row before the batches: `value < "A"` (no allocation) first, as
        every trigger sorts before "A", then the exact test."""
        for value in row:
            if isinstance(value, str) and value < "A" and value[:1] in TRIGGERS:
                self._format(["'" + v if isinstance(v, str) and v[:1] in TRIGGERS else v for v in row])
                return self._lines.pop()
        return None

    def close(self) -> str:
        """Write what is left and close; the md5 of the file's bytes."""
        if self._lines:
            self._flush()
        self.raw.close()
        return self.raw.hexdigest()

    def discard(self) -> None:
        self._lines.clear()
        self._kept.clear()
        self.raw.close()
