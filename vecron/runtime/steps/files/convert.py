"""``type_conversion``: one column to another type, vectorised with pyarrow.compute.

Targets and their Arrow types: ``string`` (string), ``integer`` (int64), ``decimal``
(decimal128 with 38 digits, ``scale`` of them after the point, 9 by default), ``float``
(float64), ``boolean`` (bool), ``date`` (date32), ``datetime`` (timestamp[us], without
a timezone).

From text, surrounding blanks are ignored and an empty (or blank) value becomes null;
``integer`` takes ``42``, ``+42``, ``-42`` (not ``42.0``), ``decimal`` and ``float`` take
``1250000.50``, ``-1.5e3`` (no thousands separators), ``boolean`` takes ``true``/``false``,
``yes``/``no``, ``y``/``n``, ``t``/``f``, ``1``/``0`` in any case, ``date`` takes
``2026-11-02`` and ``datetime`` ``2026-11-02T10:30:00`` (or a space for ``T``, with an
optional fraction; with an offset or ``Z`` it is converted to UTC), unless ``format``
gives a strptime pattern (``%d/%m/%Y``). A decimal with more digits after the point than
``scale`` fails rather than being rounded. Between types: numbers convert exactly or
fail (``1.5`` is no integer), ``boolean`` takes the numbers 0 and 1, a datetime becomes a
date by dropping its time, and any value becomes text as the CSV writer would write it.
A conversion that makes no sense (a date to an integer) fails for the whole column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vecron.errors import StepFailed
from vecron.runtime.steps.files.printable import text_column
from vecron.spec.models import TypeConversion

DEFAULT_SCALE = 9
DECIMAL_DIGITS = 38
Converter = Callable[[pa.Array], pa.Array]
FAILURES = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError)
"""What a converter raises for a value it cannot convert."""

_TRUE = pa.array(["true", "t", "yes", "y", "1"])
_FALSE = pa.array(["false", "f", "no", "n", "0"])
_OFFSET = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]*)?)?\s*(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def target_type(spec: TypeConversion) -> pa.DataType:
    """The Arrow type a conversion produces."""
    return {
        "string": pa.string(),
        "integer": pa.int64(),
        "decimal": pa.decimal128(DECIMAL_DIGITS, _scale(spec)),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us"),
    }[spec.target_type]


def _scale(spec: TypeConversion) -> int:
    return DEFAULT_SCALE if spec.scale is None else spec.scale


def converter(source: pa.DataType, spec: TypeConversion, where: str) -> Converter:
    """A function that converts an array of ``source`` as ``spec`` says, raising one of
    :data:`FAILURES` when a value does not convert; StepFailed when no value of
    ``source`` could (``where`` names the transformation)."""
    target = spec.target_type
    if spec.format is not None and target not in ("date", "datetime"):
        raise StepFailed(f"{where}: format applies to date and datetime conversions only")
    if spec.scale is not None and target != "decimal":
        raise StepFailed(f"{where}: scale applies to decimal conversions only")
    if pa.types.is_dictionary(source):
        inner = converter(source.value_type, spec, where)
        return lambda array: inner(array.dictionary_decode())
    if target == "string":
        return _to_text
    if pa.types.is_null(source):
        kind = target_type(spec)
        return lambda array: pa.nulls(len(array), kind)
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        return _from_text(spec)
    kind = target_type(spec)
    numeric = pa.types.is_integer(source) or pa.types.is_floating(source)
    numeric = numeric or pa.types.is_decimal(source)
    if target in ("integer", "float") and (numeric or pa.types.is_boolean(source)):
        return lambda array: pc.cast(array, kind)
    if target == "decimal" and numeric:
        if pa.types.is_floating(source):  # through the shortest text that reads back the same
            return lambda array: pc.cast(pc.cast(array, pa.string()), kind)
        return lambda array: pc.cast(array, kind)
    if target == "decimal" and pa.types.is_boolean(source):
        return lambda array: pc.cast(pc.cast(array, pa.int64()), kind)
    if target == "boolean" and pa.types.is_boolean(source):
        return lambda array: array
    if target == "boolean" and numeric:
        return _number_to_boolean
    if target == "date" and (pa.types.is_date(source) or pa.types.is_timestamp(source)):
        return lambda array: pc.cast(_naive(array), pa.date32(), safe=False)
    if target == "datetime" and (pa.types.is_date(source) or pa.types.is_timestamp(source)):
        return lambda array: pc.cast(_naive(array), kind, safe=False)
    raise StepFailed(f"{where}: cannot convert a column of {describe(source)} to {target}")


def describe(kind: pa.DataType) -> str:
    """An Arrow type as messages name it (``text``, ``decimal(38, 9)``…)."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_integer(kind):
        return "integers"
    if pa.types.is_floating(kind):
        return "floats"
    if pa.types.is_decimal(kind):
        return f"decimals({kind.precision}, {kind.scale})"
    if pa.types.is_boolean(kind):
        return "booleans"
    if pa.types.is_date(kind):
        return "dates"
    if pa.types.is_timestamp(kind):
        return "datetimes"
    if pa.types.is_dictionary(kind):
        return describe(kind.value_type)
    return str(kind)


def _naive(array: pa.Array) -> pa.Array:
    kind = array.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return pc.cast(array, pa.timestamp(kind.unit))  # the same instant, as UTC wall time
    return array


def _to_text(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type):
        return array
    text = text_column(array)
    if pa.types.is_string(text.type):
        return text
    return pc.cast(text, pa.string())


def _blank_to_null(array: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)


def _from_text(spec: TypeConversion) -> Converter:
    kind = target_type(spec)
    target, fmt = spec.target_type, spec.format

    def convert(array: pa.Array) -> pa.Array:
        if fmt is None and target in _PLAIN_CASTS:
            try:  # most files hold clean values: one pass, no trimming
                return pc.cast(array, kind)
            except FAILURES:
                pass
        text = _blank_to_null(array)
        if target == "integer":
            return pc.cast(pc.replace_substring_regex(text, r"^\+", ""), kind)
        if target == "boolean":
            return _text_to_boolean(text)
        if fmt is not None:
            stamps = pc.strptime(text, format=fmt, unit="us", error_is_null=False)
            return pc.cast(_naive(stamps), kind, safe=False)
        if target == "datetime":
            aware = pc.fill_null(pc.match_substring_regex(text, _OFFSET), False)
            if pc.any(aware).as_py():
                utc = pc.cast(pc.if_else(aware, text, None), pa.timestamp("us", "UTC"))
                local = pc.cast(pc.if_else(aware, None, text), kind)
                return pc.if_else(aware, pc.cast(utc, kind), local)
        return pc.cast(text, kind)

    return convert


# Arrow's own parsers accept a subset of what the rules above accept (no blanks, no
# yes/no), so their result stands when they succeed.
_PLAIN_CASTS = frozenset({"integer", "decimal", "float", "boolean", "date", "datetime"})


def _text_to_boolean(text: pa.Array) -> pa.Array:
    lower = pc.utf8_lower(text)
    true, false = pc.is_in(lower, value_set=_TRUE), pc.is_in(lower, value_set=_FALSE)
    if pc.any(pc.and_(pc.is_valid(lower), pc.invert(pc.or_(true, false)))).as_py():
        raise pa.ArrowInvalid("not a boolean")
    return pc.if_else(pc.is_null(lower), pa.scalar(None, pa.bool_()), true)


def _number_to_boolean(array: pa.Array) -> pa.Array:
    one, zero = pc.equal(array, 1), pc.equal(array, 0)
    if pc.any(pc.invert(pc.or_(one, zero))).as_py():
        raise pa.ArrowInvalid("not 0 or 1")
    return one


def failing(array: pa.Array, convert: Converter, limit: int) -> list[int]:
    """Indices of the values ``convert`` fails on, at most ``limit``, in order.

    The array is halved until the failing values are alone: a few vectorised calls per
    failing value, instead of a Python call per value.
    """
    bad: list[int] = []

    def visit(start: int, length: int) -> None:
        if len(bad) >= limit or length == 0:
            return
        try:
            convert(array.slice(start, length))
            return
        except FAILURES:
            if length == 1:
                bad.append(start)
                return
        half = length // 2
        visit(start, half)
        visit(start + half, length - half)

    visit(0, len(array))
    return bad


def reason(value: Any, spec: TypeConversion) -> str:
    """Why ``value`` did not convert, in words an author can act on."""
    target, fmt = spec.target_type, spec.format
    if target == "integer":
        return "not a whole number in the 64-bit range"
    if target == "decimal":
        scale = _scale(spec)
        digits = str(value).strip().lstrip("+-")
        whole, _, fraction = digits.partition(".")
        if whole.isdigit() and (not fraction or fraction.isdigit()):
            if len(fraction.rstrip("0")) > scale:
                return f"more than {scale} digits after the point (raise scale)"
            return f"more than {DECIMAL_DIGITS - scale} digits before the point"
        return "not a decimal number"
    if target == "float":
        return "not a number"
    if target == "boolean":
        return "not a boolean (true/false, yes/no, y/n, 1/0)"
    if fmt is not None:
        return f"does not match the format {fmt!r}"
    if target == "date":
        return "not a date (YYYY-MM-DD)"
    return "not a datetime (YYYY-MM-DDTHH:MM:SS)"
