"""Reading Excel workbooks (XLSX; XLS too, in memory) into typed record batches.

Engines (:mod:`.excelbooks`). A workbook up to 16 MiB is read with python-calamine,
which parses about ten times faster than openpyxl but holds a whole sheet in memory;
a larger one streams through openpyxl's read-only mode, so memory stays flat however
many rows it has. Both give the same rows: the rules below are applied to either.

Cells. Excel has numbers (doubles), text, booleans, dates and times (numbers with a
date format). An empty cell, an empty text and a formula error (``#N/A``…) read as
null; formulas read as the value Excel last saved. Entirely empty rows are skipped
(row numbers in messages are still the sheet's own).

Columns. The header is the first non-empty row; the columns run from its first to its
last non-empty cell (an unnamed one inside is ``column_N``, N counting from column A,
a repeated name gets ``_2``…). Without a header the columns run from A to the widest
row of the first batch, named ``column_1``… A value outside the columns is an error.
Each column's type comes from its cells in the first :data:`ROWS_PER_BATCH` rows:
numbers → float64, booleans → bool, dates (datetimes all at midnight) → date32, other
datetimes → timestamp[us], times → time64[us], text (or a mix, or nothing) → string,
where numbers are written as typed (``1001``, ``1250000.5``) and dates in ISO 8601. A
later cell that does not fit its column's type (text in a number column) fails the
step with its sheet, row and column, or is skipped under ``on_error: skip_row``.

Sheets. ``sheet`` names one (or gives its 0-based index); without it every sheet is
read, one after the other, and when the workbook has more than one sheet a first
column ``_sheet`` names each row's sheet. The sheets must then have the same header
(in any order); empty sheets are skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vecron.backends.objectstore.base import raise_if_cancelled
from vecron.errors import StepFailed
from vecron.runtime.steps.files.excelbooks import BROKEN, ROWS_PER_BATCH, Block, Row, open_book
from vecron.runtime.steps.files.tables import (
    Chunk,
    Skips,
    cell_text,
    empty_batch,
    show,
    unique_names,
)

SHEET_COLUMN = "_sheet"
_ERRORS = frozenset(
    {"#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#SPILL!", "#CALC!"}
)
_NONE = type(None)


def read_excel(
    path: Path,
    *,
    label: str,
    sheet: str | int | None,
    has_header: bool,
    skip_rows: bool,
    skips: Skips,
    cancelled: threading.Event | None = None,
    in_memory: bool | None = None,
) -> Iterator[Chunk]:
    """The rows of the workbook at ``path``, batch by batch (see the module docstring).

    ``in_memory`` picks the engine (python-calamine or openpyxl); by size when None.
    """
    book = open_book(path, label, in_memory=in_memory)
    try:
        reader = _Reader(
            label=label,
            has_header=has_header,
            skip_rows=skip_rows,
            skips=skips,
            sheet_column=sheet is None and len(book.sheet_names) > 1,
        )
        for name in _choose(book.sheet_names, sheet, label):
            reader.start_sheet(name)
            for first, rows, offset in _guarded(book.blocks(name), label, name):
                raise_if_cancelled(cancelled)
                yield from reader.add(first, rows, offset)
            chunk = reader.flush()
            if chunk is not None:
                yield chunk
        if not reader.yielded:
            yield Chunk(batch=empty_batch(reader.schema()), file=label)
    finally:
        book.close()


def _guarded(blocks: Iterator[Block], label: str, sheet: str) -> Iterator[Block]:
    """``blocks``, with a broken workbook reported as such rather than as a traceback."""
    try:
        yield from blocks
    except BROKEN as exc:
        raise StepFailed(
            f"{label}, sheet {sheet!r}: the workbook is corrupt or truncated "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _choose(available: list[str], sheet: str | int | None, label: str) -> list[str]:
    listed = ", ".join(map(repr, available))
    if sheet is None:
        return available
    if isinstance(sheet, int):
        if sheet >= len(available):
            raise StepFailed(
                f"{label}: no sheet at index {sheet} (the workbook has {len(available)}: {listed})"
            )
        return [available[sheet]]
    if sheet not in available:
        raise StepFailed(f"{label}: no sheet named {sheet!r} (sheets: {listed})")
    return [sheet]


class _Reader:
    """Turns the rows of one sheet after another into typed chunks."""

    def __init__(
        self, *, label: str, has_header: bool, skip_rows: bool, skips: Skips, sheet_column: bool
    ) -> None:
        self.label, self.has_header = label, has_header
        self.skip_rows, self.skips = skip_rows, skips
        self.sheet_column = sheet_column
        self.names: list[str] | None = None  # fixed by the first sheet
        self.types: list[pa.DataType] | None = None  # fixed by the first batch
        self.yielded = False
        self.sheet = ""

    def start_sheet(self, sheet: str) -> None:
        self.sheet = sheet
        self.span: tuple[int, int] | None = None  # columns [lo, hi); 0 is column A
        self.order: list[int] | None = None  # this sheet's column i is names[order[i]]
        self.rows: list[Row] = []
        self.numbers: list[int] = []
        self.offset = 0

    def schema(self) -> pa.Schema:
        names = self.names or []
        types = self.types or [pa.string()] * len(names)
        fields = [pa.field(n, t) for n, t in zip(names, types, strict=True)]
        if self.sheet_column and fields:
            fields.insert(0, pa.field(SHEET_COLUMN, pa.string()))
        return pa.schema(fields)

    def add(self, first: int, rows: list[Row], offset: int) -> list[Chunk]:
        """Take rows numbered from ``first`` whose cells start at column ``offset`` (the
        same for a whole sheet); the chunks of the batches they fill."""
        self.offset = offset
        filled = [
            (first + i, row)
            for i, row in enumerate(rows)
            if row.count(None) + row.count("") != len(row)
        ]
        if filled and self.span is None:
            self._first_row(*filled[0], offset)
            if self.has_header:
                del filled[0]
        self.numbers.extend(number for number, _ in filled)
        self.rows.extend(row for _, row in filled)
        chunks = []
        while len(self.rows) >= ROWS_PER_BATCH:
            chunk = self.flush(ROWS_PER_BATCH)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def _first_row(self, number: int, row: Row, offset: int) -> None:
        filled = [i for i, value in enumerate(row) if _filled(value)]
        lo, hi = offset + filled[0], offset + filled[-1] + 1
        if not self.has_header:
            self.span = (0, hi)  # widened by the rest of the first batch
            return
        self.span = (lo, hi)
        header, _ = _cells(row, offset, lo, hi)
        names = [
            name if _filled(cell) else f"column_{lo + i + 1}"
            for i, (name, cell) in enumerate(zip(unique_names(header), header, strict=True))
        ]
        if self.names is None:
            self.names = names
        elif sorted(names) != sorted(self.names):
            raise StepFailed(
                f"{self.label}, sheet {self.sheet!r}, row {number}: the columns {names} differ "
                f"from the first sheet's {self.names}; read one sheet at a time with `sheet:`"
            )
        else:
            self.order = [self.names.index(name) for name in names]

    def flush(self, limit: int | None = None) -> Chunk | None:
        """A chunk of the first ``limit`` rows taken (all when None)."""
        if not self.rows or self.span is None:
            return None
        taken, numbers = self.rows[:limit], self.numbers[:limit]
        del self.rows[:limit], self.numbers[:limit]
        offset = self.offset
        if self.names is None:  # no header: the first batch's widest row sets the columns
            widest = max(offset + _last_filled(r) + 1 for r in taken)
            self.span = (0, max(self.span[1], widest))
            self.names = [f"column_{i + 1}" for i in range(self.span[1])]
        lo, hi = self.span
        problems: dict[int, tuple[str, Any, str]] = {}
        rows: list[Row] = []
        if offset == lo and set(map(len, taken)) == {hi - lo}:
            taken, rows = [], taken  # every row spans the columns exactly: as they are
        for index, row in enumerate(taken):
            if offset == lo and len(row) == hi - lo:
                rows.append(row)
                continue
            cells, outside = _cells(row, offset, lo, hi)
            rows.append(cells)
            if outside is not None:
                problems[index] = (
                    _letters(outside),
                    row[outside - offset],
                    "a value outside the columns of the header",
                )
        width = hi - lo
        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [()] * width
        first = self.types is None
        if first:
            self.types = [_infer(_values(c)) for c in columns]
            if self.order is not None:
                self.types = [self.types[self.order.index(i)] for i in range(width)]
        assert self.types is not None
        assert self.names is not None
        arrays: list[pa.Array | None] = [None] * width
        for i, column in enumerate(columns):
            target = i if self.order is None else self.order[i]
            array, bad = _convert(_values(column), self.types[target])
            arrays[target] = array
            for index, value, reason in bad:
                problems.setdefault(index, (self.names[target], value, reason))
        return self._chunk([a for a in arrays if a is not None], numbers, problems)

    def _chunk(
        self, arrays: list[pa.Array], numbers: list[int], problems: dict[int, tuple[str, Any, str]]
    ) -> Chunk:
        assert self.names is not None
        names = list(self.names)
        if self.sheet_column:
            arrays.insert(0, pa.array([self.sheet] * len(numbers), pa.string()))
            names.insert(0, SHEET_COLUMN)
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        chunk = Chunk(
            batch=batch, file=self.label, sheet=self.sheet, rows=pa.array(numbers, pa.int64())
        )
        if problems:
            first = min(problems)
            if not self.skip_rows:
                column, value, reason = problems[first]
                raise StepFailed(
                    f"{chunk.where(first, column)}: {show(value)}: {reason} "
                    "(fix the cell, or set on_error: skip_row)"
                )
            for index in sorted(problems):
                column, value, reason = problems[index]
                self.skips.add(chunk, index, column, f"{show(value)}: {reason}")
            chunk = chunk.keep(pa.array([i not in problems for i in range(len(numbers))]))
        self.yielded = True
        return chunk


# --- cells -------------------------------------------------------------------------


def _filled(value: Any) -> bool:
    return value is not None and value != ""


def _last_filled(row: Row) -> int:
    for index in range(len(row) - 1, -1, -1):
        if _filled(row[index]):
            return index
    return -1


def _cells(row: Row, offset: int, lo: int, hi: int) -> tuple[list[Any], int | None]:
    """The row's cells in columns [lo, hi) and the first column outside them that holds
    a value (None when there is none)."""
    start, stop = lo - offset, hi - offset
    cells = list(row[max(start, 0) : max(stop, 0)])
    if start < 0:  # the row starts right of lo
        cells[:0] = [None] * min(-start, hi - lo)
    cells.extend([None] * (hi - lo - len(cells)))
    for index in range(min(max(start, 0), len(row))):
        if _filled(row[index]):
            return cells, offset + index
    tail = row[max(stop, 0) :]
    if tail and tail.count(None) + tail.count("") != len(tail):
        return cells, offset + max(stop, 0) + next(i for i, v in enumerate(tail) if _filled(v))
    return cells, None


def _letters(column: int) -> str:
    """0 → ``A``, 27 → ``AB``: how Excel names column ``column``."""
    name = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        name = chr(65 + rest) + name
    return name


class _Column:
    """One column of a batch: its values (empty text and errors as None) and kinds."""

    __slots__ = ("kinds", "values")

    def __init__(self, values: Row) -> None:
        if "" in values:
            values = [None if v == "" else v for v in values]
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if str in kinds and not _ERRORS.isdisjoint(values):
            values = [None if v in _ERRORS else v for v in values]
            kinds = set(map(type, values))
            kinds.discard(_NONE)
        self.values, self.kinds = values, kinds


def _values(column: Row) -> _Column:
    return _Column(column)


_NUMBERS = frozenset({int, float})
_DATES = frozenset({date, datetime})


def _infer(column: _Column) -> pa.DataType:
    kinds = column.kinds
    if kinds and kinds <= _NUMBERS:
        return pa.float64()
    if kinds == {bool}:
        return pa.bool_()
    if kinds and kinds <= _DATES:
        midnight = all(
            type(v) is date or v.time() == time() for v in column.values if v is not None
        )
        return pa.date32() if midnight else pa.timestamp("us")
    if kinds == {time}:
        return pa.time64("us")
    return pa.string()


def _convert(column: _Column, target: pa.DataType) -> tuple[pa.Array, list[tuple[int, Any, str]]]:
    """The column as an Arrow array of ``target``, and the cells that do not fit."""
    values, kinds = column.values, column.kinds
    if not kinds:
        return pa.nulls(len(values), target), []
    if (
        (target == pa.float64() and kinds <= _NUMBERS)
        or (target == pa.bool_() and kinds == {bool})
        or (target == pa.string() and kinds == {str})
        or (target == pa.time64("us") and kinds == {time})
        or (target == pa.date32() and kinds == {date})
        or (target == pa.timestamp("us") and kinds == {datetime})
    ):
        return pa.array(values, target), []
    if target == pa.date32() and kinds == {datetime}:
        stamps = pa.array(values, pa.timestamp("us"))
        days = pc.cast(stamps, pa.date32(), safe=False)
        midnight = pc.fill_null(pc.equal(pc.cast(days, pa.timestamp("us")), stamps), True)
        if pc.all(midnight).as_py():
            return days, []
    bad: list[tuple[int, Any, str]] = []
    fitted: list[Any] = []
    for index, value in enumerate(values):
        try:
            fitted.append(None if value is None else _fit(value, target))
        except _Misfit as exc:
            bad.append((index, value, str(exc)))
            fitted.append(None)
    return pa.array(fitted, target), bad


class _Misfit(Exception):
    pass


def _fit(value: Any, target: pa.DataType) -> Any:
    kind = type(value)
    if target == pa.string():
        if kind is datetime and value.time() == time():
            return value.date().isoformat()
        return cell_text(value)
    if target == pa.float64() and kind in _NUMBERS:
        return value
    if target == pa.bool_() and kind is bool:
        return value
    if target == pa.time64("us") and kind is time:
        return value
    if target == pa.timestamp("us") and kind in _DATES:
        return value if kind is datetime else datetime.combine(value, time())
    if target == pa.date32() and kind in _DATES:
        if kind is date:
            return value
        if value.time() == time():
            return value.date()
    raise _Misfit(
        f"{_KIND_NAMES.get(kind, kind.__name__)} in a column of {_TYPE_NAMES[str(target)]} "
        f"(typed by its first {ROWS_PER_BATCH:,} rows)"
    )


_KIND_NAMES: dict[type, str] = {
    str: "text",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    date: "a date",
    datetime: "a date and time",
    time: "a time",
}
_TYPE_NAMES = {
    "double": "numbers",
    "bool": "booleans",
    "date32[day]": "dates",
    "timestamp[us]": "dates and times",
    "time64[us]": "times",
    "string": "text",
}
