"""One XLSX file through XlsxWriter in constant-memory mode (extra `xlsx`), cells typed.

Each cell goes to the writer method for its type, so text is always a string
cell (`write_string` never makes a formula) and numbers and dates are typed.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dlsupervisor.toolkit.hashing import HashingFile

MAX_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header
EXTRA = "xlsx"


class MissingExtra(RuntimeError):
    """An optional library is not installed: the message names the extra that brings it."""


def load_xlsxwriter() -> Any:
    try:
        import xlsxwriter
    except ImportError:
        raise MissingExtra(f".xlsx needs XlsxWriter: pip install 'dlsupervisor[{EXTRA}]'") from None
    return xlsxwriter


class XlsxPart:
    """Rows to one .xlsx sheet; `formulas=True` lets text starting with `=` be a formula."""

    def __init__(
        self,
        path: str,
        columns: Sequence[str] | None,
        *,
        formulas: bool = False,
        limit: int = -1,
        on_full: Callable[[Any], None] | None = None,
        **_: Any,
    ):
        xlsxwriter = load_xlsxwriter()
        self.raw = HashingFile(path)
        self.book = xlsxwriter.Workbook(
            self.raw,
            {"constant_memory": True, "remove_timezone": True, "strings_to_formulas": formulas},
        )
        self.sheet = self.book.add_worksheet()
        self.date_format = self.book.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime_format = self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.formulas = formulas
        self.row = 0
        self.limit, self.on_full = limit, on_full  # at `limit` data rows, on_full(row)
        self.header = 0
        if columns:
            self.write_row(columns)
        self.header = self.row

    @property
    def rows(self) -> int:
        return self.row - self.header

    def write_row(self, row: Iterable[Any]) -> None:
        sheet, number = self.sheet, self.row
        if number - self.header == self.limit and self.on_full is not None:
            return self.on_full(row)  # the next part takes this row
        string, num = sheet.write_string, sheet.write_number
        for col, value in enumerate(row):
            kind = value.__class__
            if kind is str:
                if self.formulas and value[:1] == "=":
                    sheet.write_formula(number, col, value)
                else:
                    string(number, col, value)
            elif kind is int or kind is float:
                num(number, col, value)
            elif value is None:
                continue
            else:
                self._write_other(number, col, value)
        self.row = number + 1

    def _write_other(self, number: int, col: int, value: Any) -> None:
        sheet = self.sheet
        if isinstance(value, bool):
            sheet.write_boolean(number, col, value)
        elif isinstance(value, (int, float, decimal.Decimal)):
            sheet.write_number(number, col, float(value) if isinstance(value, decimal.Decimal) else value)
        elif isinstance(value, dt.datetime):
            sheet.write_datetime(number, col, value, self.datetime_format)
        elif isinstance(value, dt.date):
            sheet.write_datetime(number, col, value, self.date_format)
        elif isinstance(value, str):
            sheet.write_string(number, col, str(value))
        elif isinstance(value, bytes):
            sheet.write_string(number, col, value.decode("utf-8", "replace"))
        else:
            sheet.write_string(number, col, str(value))

    def close(self) -> str:
        self.book.close()
        self.raw.close()
        return self.raw.hexdigest()

    def discard(self) -> None:
        try:
            self.book.close()
        except Exception:  # a half-written book: the file is removed anyway
            pass
        self.raw.close()
