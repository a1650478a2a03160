"""The transformations of a file step, applied in order to each chunk of rows.

``column_mapping`` renames a column, ``type_conversion`` converts one
(:mod:`~vecron.runtime.steps.files.convert`), ``filter`` keeps the rows its condition
holds for (:mod:`~vecron.runtime.steps.files.filtering`), ``select`` keeps the named
columns in the order given. Everything runs on whole record batches through
pyarrow.compute; a value that does not convert fails the step, naming its file, sheet,
row, column and value, or, under ``on_error: skip_row``, drops its row and is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from vecron.errors import StepFailed
from vecron.runtime.steps.files import convert
from vecron.runtime.steps.files.filtering import RowFilter
from vecron.runtime.steps.files.tables import Chunk, Skips, show
from vecron.spec.conditions import parse_condition
from vecron.spec.models import ColumnMapping, Filter, Select, Transformation, TypeConversion
from vecron.spec.references import Reference


class Transformer:
    """Applies ``transformations`` to chunks; compiled parts are cached per column layout."""

    def __init__(
        self,
        transformations: Sequence[Transformation],
        *,
        skip_rows: bool,
        skips: Skips,
        reference: Callable[[Reference], Any],
    ) -> None:
        self._steps = list(transformations)
        self._skip_rows, self._skips = skip_rows, skips
        self._reference = reference
        self._cache: dict[tuple[int, pa.Schema], Any] = {}
        self.row_by_row = False  # a filter evaluates some part in Python

    def apply(self, chunk: Chunk) -> Chunk:
        for position, step in enumerate(self._steps):
            where = f"transformations[{position}] ({step.type})"
            if isinstance(step, ColumnMapping):
                chunk = _rename(chunk, step, where)
            elif isinstance(step, Select):
                chunk = _select(chunk, step, where)
            elif isinstance(step, Filter):
                chunk = chunk.keep(self._filter(position, step, chunk, where)(chunk.batch))
            elif isinstance(step, TypeConversion):
                chunk = self._convert(position, step, chunk, where)
        return chunk

    def _filter(self, position: int, step: Filter, chunk: Chunk, where: str) -> RowFilter:
        key = (position, chunk.batch.schema)
        compiled = self._cache.get(key)
        if compiled is None:
            condition = parse_condition(step.condition, mode="filter")
            compiled = RowFilter(condition, chunk.batch.schema, self._reference, where)
            self.row_by_row = self.row_by_row or compiled.row_by_row
            self._cache[key] = compiled
        assert isinstance(compiled, RowFilter)
        return compiled

    def _convert(self, position: int, step: TypeConversion, chunk: Chunk, where: str) -> Chunk:
        index = _index(chunk, step.column, where)
        array = chunk.batch.column(index)
        key = (position, chunk.batch.schema)
        function = self._cache.get(key)
        if function is None:
            function = convert.converter(array.type, step, f"{where} of {step.column!r}")
            self._cache[key] = function
        try:
            result = function(array)
        except convert.FAILURES:
            limit = len(array) if self._skip_rows else 1
            bad = convert.failing(array, function, limit)
            if not bad:
                raise
            if not self._skip_rows:
                value = array[bad[0]].as_py()
                raise StepFailed(
                    f"{chunk.where(bad[0], step.column)}: cannot convert {show(value)} to "
                    f"{step.target_type}: {convert.reason(value, step)} "
                    "(fix the value, or set on_error: skip_row)"
                ) from None
            for i in bad:
                value = array[i].as_py()
                self._skips.add(
                    chunk, i, step.column, f"{show(value)}: {convert.reason(value, step)}"
                )
            dropped = set(bad)
            chunk = chunk.keep(pa.array([i not in dropped for i in range(len(array))]))
            result = function(chunk.batch.column(index))
        batch = chunk.batch.set_column(index, step.column, result)
        return chunk.replace(batch)


def _index(chunk: Chunk, name: str, where: str) -> int:
    index: int = chunk.batch.schema.get_field_index(name)
    if index < 0:
        names = ", ".join(chunk.batch.schema.names) or "none"
        raise StepFailed(f"{where}: {chunk.file} has no column {name!r} (columns: {names})")
    return index


def _rename(chunk: Chunk, step: ColumnMapping, where: str) -> Chunk:
    index = _index(chunk, step.from_, where)
    names = list(chunk.batch.schema.names)
    if step.to != step.from_ and step.to in names:
        raise StepFailed(f"{where}: there already is a column {step.to!r}")
    names[index] = step.to
    return chunk.replace(pa.RecordBatch.from_arrays(chunk.batch.columns, names=names))


def _select(chunk: Chunk, step: Select, where: str) -> Chunk:
    if len(set(step.columns)) != len(step.columns):
        raise StepFailed(f"{where}: a column is named twice in {step.columns}")
    indices = [_index(chunk, name, where) for name in step.columns]
    return chunk.replace(chunk.batch.select(indices))
