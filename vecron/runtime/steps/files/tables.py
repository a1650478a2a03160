"""What the file step's parts pass between them: chunks of rows, skipped rows, JSON rows.

A :class:`Chunk` is one Arrow record batch plus where its rows came from (the file, the
sheet, the row numbers), so that a value that fails to convert three transformations
later is still reported at the row the author can open in a spreadsheet.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vecron.errors import StepFailed

MAX_EXAMPLES = 20
"""Skipped rows described one by one in the output; the rest are only counted."""
VALUE_CHARS = 100
"""A value quoted in a message is cut to this many characters."""
ROWS_PER_CHUNK = 65_536
"""Rows per chunk for rows that come from the context or from an Arrow file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """A record batch and where its rows came from.

    ``rows`` holds each row's number in its source (a spreadsheet's row number: the
    header, if any, is row 1); when it is None the rows are numbered consecutively
    from ``first_row``. ``file`` names the source in messages; ``sheet`` is the
    worksheet of an Excel source.
    """

    batch: pa.RecordBatch
    file: str
    sheet: str | None = None
    first_row: int = 1
    rows: pa.Int64Array | None = None

    def row(self, index: int) -> int:
        """The source row number of the row at ``index`` in the batch."""
        if self.rows is None:
            return self.first_row + index
        return int(self.rows[index].as_py())

    def where(self, index: int, column: str | None = None) -> str:
        """``file.csv, row 7, column 'amount'``: how messages name a place."""
        parts = [self.file]
        if self.sheet is not None:
            parts.append(f"sheet {self.sheet!r}")
        parts.append(f"row {self.row(index)}")
        if column is not None:
            parts.append(f"column {column!r}")
        return ", ".join(parts)

    def keep(self, mask: pa.BooleanArray) -> Chunk:
        """The rows where ``mask`` is true (it holds no nulls), with their numbers."""
        if mask.null_count == 0 and pc.all(mask).as_py() is not False:
            return self
        indices = pc.indices_nonzero(mask)
        if self.rows is None:
            rows = pc.add(indices.cast(pa.int64()), self.first_row)
        else:
            rows = self.rows.take(indices)
        return Chunk(
            batch=self.batch.filter(mask),
            file=self.file,
            sheet=self.sheet,
            first_row=self.first_row,
            rows=rows,
        )

    def replace(self, batch: pa.RecordBatch) -> Chunk:
        """The same rows with other columns (a rename, a conversion, a selection)."""
        return Chunk(
            batch=batch, file=self.file, sheet=self.sheet, first_row=self.first_row, rows=self.rows
        )


@dataclass(slots=True)
class Skips:
    """Rows dropped under ``on_error: skip_row``: a count and the first few, described."""

    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        chunk: Chunk | None,
        index: int | None,
        column: str | None,
        error: str,
        *,
        file: str | None = None,
    ) -> None:
        """Count one skipped row; ``chunk`` and ``index`` place it (``file`` alone when
        its row is not known)."""
        self.count += 1
        if len(self.examples) >= MAX_EXAMPLES:
            return
        example: dict[str, Any] = {"file": chunk.file if chunk else file}
        if chunk is not None and chunk.sheet is not None:
            example["sheet"] = chunk.sheet
        example["row"] = chunk.row(index) if chunk is not None and index is not None else None
        if column is not None:
            example["column"] = column
        example["error"] = error
        self.examples.append(example)


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A batch with ``schema`` and no rows (what a file with a header only reads as)."""
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def show(value: Any) -> str:
    """A value as messages quote it: its repr, cut to :data:`VALUE_CHARS` characters."""
    text = repr(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…'"


def unique_names(names: Sequence[Any]) -> list[str]:
    """Column names from a header: an empty one becomes ``column_N`` (N counts from
    1), a repeated one gets ``_2``, ``_3``…"""
    taken: set[str] = set()
    unique: list[str] = []
    for position, raw in enumerate(names, start=1):
        name = "" if raw is None else cell_text(raw)
        base = name if name.strip() else f"column_{position}"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def cell_text(value: Any) -> str:
    """A Python value as text the way a user would type it (used for headers and for
    mixed columns): whole floats without ``.0``, dates in ISO 8601, booleans lower case."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def decimal_text(value: Decimal) -> str:
    """``Decimal('1250000.500000000')`` → ``'1250000.5'``: no exponent, no trailing zeros."""
    if not value.is_finite():
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def json_value(value: Any) -> Any:
    """A value read from Arrow as JSON data for the context's ``data``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return str(value)


def json_rows(batches: Iterable[pa.RecordBatch]) -> list[dict[str, Any]]:
    """The rows of ``batches`` as JSON objects, in column order."""
    rows: list[dict[str, Any]] = []
    for batch in batches:
        names = batch.schema.names
        columns = [[json_value(v) for v in column.to_pylist()] for column in batch.columns]
        rows.extend(dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True))
    return rows


def rows_table(rows: Any, *, columns: Sequence[str] | None, label: str) -> pa.Table:
    """Rows from the Job Context (a list of objects) as an Arrow table.

    Columns are ``columns`` first (a database step's order), then every other key in
    the order it first appears. A column's type is what Arrow infers from its JSON
    values (integers, floats, text, booleans; integers and floats together are
    floats); a column that mixes kinds, or holds objects or lists, becomes text, with
    non-text values written as JSON. A missing key is null.
    """
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise StepFailed(
            f"{label}: data_source must be rows (a list of objects) or a file output, "
            f"got {type(rows).__name__}"
        )
    names: dict[str, None] = dict.fromkeys(str(c) for c in columns or ())
    for row in rows:
        names.update(dict.fromkeys(str(key) for key in row))
    arrays = [_json_column([row.get(name) for row in rows]) for name in names]
    return pa.Table.from_arrays(arrays, names=list(names))


def _json_column(values: list[Any]) -> pa.Array:
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds and not kinds & {dict, list} and not (bool in kinds and len(kinds) > 1):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    text = [
        v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        for v in values
    ]
    return pa.array(text, pa.string())
