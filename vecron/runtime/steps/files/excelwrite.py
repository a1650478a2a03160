"""Writing XLSX workbooks with openpyxl's write-only mode: one sheet, rows streamed.

Values keep their Excel types: numbers, text, booleans, dates (``yyyy-mm-dd``) and
datetimes. Excel numbers are doubles, which openpyxl writes with 16 significant digits,
so a decimal that would not read back as the same digits (about 16 significant digits
or more) or an integer beyond ±2^53 is written as text, with every digit; so is a NaN
or an infinity. Datetimes with a timezone are written in
UTC. Text that starts with ``=`` stays text (it never becomes a formula). Lists and
objects are written as JSON text. Excel's limits are checked, with the row and column
named: 1,048,576 rows a sheet, 32,767 characters a cell, no control characters; a
sheet name has 1 to 31 characters and none of ``[]:*?/\\``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vecron.errors import StepFailed
from vecron.runtime.steps.files.printable import text_column
from vecron.runtime.steps.files.tables import Chunk, Skips, decimal_text, show

MAX_ROWS = 1_048_576
MAX_CELL_CHARS = 32_767
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_EXACT_INTEGER = 2**53


def check_sheet_name(name: str, label: str) -> str:
    if not 1 <= len(name) <= 31 or _BAD_TITLE.search(name) or name[0] == "'" or name[-1] == "'":
        raise StepFailed(
            f"{label}: {name!r} cannot be a sheet name (1 to 31 characters, none of "
            "[ ] : * ? / \\, not starting or ending with ')"
        )
    return name


class ExcelWriter:
    """Writes chunks to one sheet of a new XLSX workbook at ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        label: str,
        sheet_name: str,
        has_header: bool,
        skip_rows: bool,
        skips: Skips,
    ) -> None:
        from openpyxl import Workbook

        self._path, self._label = path, label
        self._has_header, self._skip_rows, self._skips = has_header, skip_rows, skips
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(check_sheet_name(sheet_name, label))
        self._rows = 0
        self._started = False

    def write(self, chunk: Chunk) -> pa.RecordBatch:
        """Append the chunk's rows; returns those written (fewer when some were skipped)."""
        batch = chunk.batch
        if not self._started:
            self._started = True
            if self._has_header and batch.num_columns:
                self._header(batch.schema.names)
        problems = _problems(batch)
        if problems:
            first = min(problems)
            if not self._skip_rows:
                column, value, reason = problems[first]
                raise StepFailed(f"{chunk.where(first, column)}: {show(value)}: {reason}")
            for index in sorted(problems):
                column, value, reason = problems[index]
                self._skips.add(chunk, index, column, f"{show(value)}: {reason}")
            batch = batch.filter(pa.array([i not in problems for i in range(batch.num_rows)]))
        if self._rows + batch.num_rows > MAX_ROWS:
            raise StepFailed(
                f"{self._label}: an Excel sheet holds at most {MAX_ROWS:,} rows "
                f"(this one would have {self._rows + batch.num_rows:,} or more); "
                "write CSV or Parquet instead"
            )
        columns = [self._values(column) for column in batch.columns]
        append = self._sheet.append
        for row in zip(*columns, strict=True):
            append(row)
        self._rows += batch.num_rows
        return batch

    def _header(self, names: list[str]) -> None:
        for name in names:
            if re.search(_CONTROL, name) or len(name) > MAX_CELL_CHARS:
                raise StepFailed(f"{self._label}: {show(name)} cannot be an Excel column name")
        self._sheet.append([self._text_cell(n) if n.startswith("=") else n for n in names])
        self._rows += 1

    def _text_cell(self, value: str) -> Any:
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self._sheet, value)
        cell.data_type = "s"
        return cell

    def _values(self, column: pa.Array) -> list[Any]:
        """A column as the Python values openpyxl writes (see the module docstring)."""
        kind = column.type
        if pa.types.is_dictionary(kind):
            return self._values(column.dictionary_decode())
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values: list[Any] = column.to_pylist()
            formula = pc.fill_null(pc.starts_with(column, "="), False)
            if pc.any(formula).as_py():
                for index in pc.indices_nonzero(formula).to_pylist():
                    values[index] = self._text_cell(values[index])
            return values
        if pa.types.is_decimal(kind):
            return _decimals(column)
        if pa.types.is_integer(kind):
            values = column.to_pylist()
            wide = pc.fill_null(
                pc.greater(pc.abs(column.cast(pa.float64())), _EXACT_INTEGER), False
            )
            for index in pc.indices_nonzero(wide).to_pylist():
                values[index] = str(values[index])
            return values
        if pa.types.is_floating(kind):
            values = column.to_pylist()
            odd = pc.fill_null(pc.invert(pc.is_finite(column)), False)
            for index in pc.indices_nonzero(odd).to_pylist():
                number = values[index]
                sign = "-" if number < 0 else ""
                values[index] = "NaN" if math.isnan(number) else f"{sign}Infinity"
            return values
        if pa.types.is_timestamp(kind):
            return list(pc.cast(column, pa.timestamp("us"), safe=False).to_pylist())
        if pa.types.is_time(kind):
            return list(pc.cast(column, pa.time64("us"), safe=False).to_pylist())
        if pa.types.is_boolean(kind) or pa.types.is_date(kind) or pa.types.is_null(kind):
            return list(column.to_pylist())
        return list(text_column(column).to_pylist())

    def close(self) -> None:
        self._book.save(self._path)

    def discard(self) -> None:
        self._sheet.close()  # ends openpyxl's row writer while its temporary file is open


def _decimals(column: pa.Array) -> list[Any]:
    """Decimals as doubles where a double reads back as the same digits, else as text."""
    values: list[Any] = column.to_pylist()
    return [None if v is None else _decimal_cell(v) for v in values]


def _decimal_cell(value: Decimal) -> float | str:
    number = float(value)
    # openpyxl writes a double with 16 significant digits ("%.16g"): the number must read
    # back from that text as the same digits.
    if math.isfinite(number) and Decimal(repr(float(f"{number:.16g}"))) == value:
        return number
    return decimal_text(value)


def _problems(batch: pa.RecordBatch) -> dict[int, tuple[str, Any, str]]:
    """Text values Excel cannot hold, by row index: (column, value, reason)."""
    problems: dict[int, tuple[str, Any, str]] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        control = pc.fill_null(pc.match_substring_regex(column, _CONTROL), False)
        long = pc.fill_null(pc.greater(pc.utf8_length(column), MAX_CELL_CHARS), False)
        for mask, reason in (
            (control, "Excel cells cannot hold control characters"),
            (long, f"Excel cells hold at most {MAX_CELL_CHARS:,} characters"),
        ):
            if pc.any(mask).as_py():
                for index in pc.indices_nonzero(mask).to_pylist():
                    problems.setdefault(index, (name, column[index].as_py(), reason))
    return problems
