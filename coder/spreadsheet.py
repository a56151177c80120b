"""Text that leaves coder in a spreadsheet cell (CSV or XLSX), and comes back.

Transcripts are written by participants, so a cell may begin with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return, which Excel, LibreOffice and Google Sheets run as a formula (OWASP's
"CSV injection"). Every CSV and XLSX coder writes passes its text through :func:`neutralise`,
which puts a ``'`` in front of such a cell (and in front of a cell that already begins with
``'``, so the round trip is exact); every sheet coder reads back passes through :func:`restore`,
which takes exactly that ``'`` off again. XLSX text cells are written as strings, never as
formulas.
"""

from __future__ import annotations

import csv
import io
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def neutralise(value: Any) -> Any:
    """A text that a spreadsheet will show as text; other values unchanged."""
    if isinstance(value, str) and value and (value[0] in TRIGGERS or value[0] == QUOTE):
        return QUOTE + value
    return value


def restore(value: Any) -> Any:
    """The text :func:`neutralise` was given (a ``'`` a person typed before plain text stays)."""
    if (isinstance(value, str) and len(value) > 1 and value[0] == QUOTE
            and (value[1] in TRIGGERS or value[1] == QUOTE)):
        return value[1:]
    return value


def cell_text(value: Any) -> str:
    """A CSV cell as read back: stripped, the neutralising quote taken off. Extra fields past the
    header (a list, from csv.DictReader) and missing ones (None) read as empty."""
    if not isinstance(value, str):
        return ""
    return restore(value.strip()).strip()


def neutralise_row(values) -> list[Any]:
    return [neutralise(v) for v in values]


def neutralise_frame(df):
    """A copy of a DataFrame with every text cell (and column name) neutralised."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(c) for c in out.columns]
    return out


def restore_frame(df):
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(restore)
    return out


def neutralise_workbook(wb) -> None:
    """Make every text cell of an openpyxl workbook a string cell, never a formula.

    coder writes no formulas into cells, so any cell openpyxl took for one came from text."""
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and (cell.data_type == "f" or neutralise(cell.value)
                                                    != cell.value):
                    cell.value = neutralise(cell.value)
                    cell.data_type = "s"


class CsvReader(csv.DictReader):
    """csv.DictReader whose failures (a field over csv's size limit, a NUL byte, a quote left
    open) are one InputError naming the file and the line, never a csv.Error traceback."""

    def __init__(self, text: str, path, *, error=None) -> None:
        super().__init__(io.StringIO(text))
        self._path = path
        self._error = error

    def _fail(self, e: Exception):
        from coder.errors import InputError

        error = self._error or InputError
        return error(f"not readable as CSV ({e})", path=self._path, line=self.line_num or 1)

    @property
    def fieldnames(self):
        try:
            return csv.DictReader.fieldnames.fget(self)
        except csv.Error as e:
            raise self._fail(e) from None

    @fieldnames.setter
    def fieldnames(self, value):
        csv.DictReader.fieldnames.fset(self, value)

    def __next__(self):
        try:
            return super().__next__()
        except csv.Error as e:
            raise self._fail(e) from None
