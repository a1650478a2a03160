"""Columns as text files write them: the CSV writer's view of a record batch."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vecron.runtime.steps.files.tables import json_value

_ZERO_FRACTION = r"\.0+$"


def printable(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with every column in a type Arrow's CSV writer prints as vecron
    means it (see :mod:`vecron.runtime.steps.files.csvfile`)."""
    columns = [text_column(column) for column in batch.columns]
    if all(new is old for new, old in zip(columns, batch.columns, strict=True)):
        return batch
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def text_column(column: pa.Array) -> pa.Array:
    """One column as CSV writes it; columns Arrow already prints well are returned as is."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return text_column(column.dictionary_decode())
    if pa.types.is_decimal(kind):
        text = pc.cast(column, pa.string())
        text = pc.replace_substring_regex(text, r"(\.[0-9]*?)0+$", r"\1")
        return pc.replace_substring_regex(text, r"\.$", "")
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
            return pc.replace_substring_regex(text, _ZERO_FRACTION, "")
        text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
        return pc.replace_substring_regex(text, r"\.0+([+-])", r"\1")
    if pa.types.is_time(kind):
        return pc.replace_substring_regex(pc.cast(column, pa.string()), _ZERO_FRACTION, "")
    if (
        pa.types.is_nested(kind)
        or pa.types.is_duration(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return pa.array([_json_text(v) for v in column.to_pylist()], pa.string())
    return column


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    converted = json_value(value)
    if isinstance(converted, str):
        return converted
    return json.dumps(converted, ensure_ascii=False)
