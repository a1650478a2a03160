"""``filter``: a condition of :mod:`vecron.spec.conditions` as a vectorised row mask.

The condition is parsed once, when the job is loaded, and compiled once per column
layout into pyarrow.compute calls over whole record batches. References
(``{{steps.a.output.n}}``) are resolved once, when the step starts.

Semantics, those of ``when`` applied to each row, with these rules for columns:

- A column is compared with a literal of its own kind: numbers (integer, float,
  decimal) with numbers, text with text, booleans with ``true``/``false``; a date or
  datetime column with ISO 8601 text (``issued_on >= '2026-11-01'``). Any other pairing
  (``amount > '5'`` on a decimal column) is an error when the filter starts, naming
  the column and its type: it could never match, which is almost certainly a mistake.
- Null: ``col == null`` and ``col != null`` test for it; ``col != 5`` is true for a
  null; an ordering (``<``, ``>=``…) with a null is false (``when`` would fail instead).
- ``col in [..]`` tests membership; ``'text' in col`` tests for a substring.
- A bare column is true when it is ``true``, a non-zero number, a non-empty text, or
  (for other types) not null.

What Arrow cannot express in one call, a column's value inside another column
(``code in description``), a literal text containing a column (``col in 'abc'``), a
list that holds columns, is evaluated row by row in Python for that part only, with
the same rules; it is correct but some ten times slower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vecron.errors import ConditionEvaluationError, StepFailed
from vecron.runtime.steps.files.convert import describe
from vecron.runtime.steps.files.tables import json_value
from vecron.spec import conditions as cond
from vecron.spec.references import Reference

Mask = Callable[[pa.RecordBatch], pa.Array]
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_PC: Mapping[str, Callable[[Any, Any], pa.Array]] = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


class RowFilter:
    """A compiled filter for batches whose columns are ``schema``."""

    def __init__(
        self,
        condition: cond.Condition,
        schema: pa.Schema,
        reference: Callable[[Reference], Any],
        where: str,
    ) -> None:
        self._schema, self._reference, self._where = schema, reference, where
        self.row_by_row = False  # some part runs in Python (tests and logs read it)
        self._mask = self._bool(condition.node)

    def __call__(self, batch: pa.RecordBatch) -> pa.Array:
        """The rows to keep: a boolean array without nulls."""
        return self._mask(batch)

    # --- compiling -----------------------------------------------------------------

    def _bool(self, node: cond.Node) -> Mask:
        if isinstance(node, cond.Not):
            inner = self._bool(node.operand)
            return lambda batch: pc.invert(inner(batch))
        if isinstance(node, cond.And | cond.Or):
            parts = [self._bool(item) for item in node.operands]
            combine = pc.and_ if isinstance(node, cond.And) else pc.or_

            def both(batch: pa.RecordBatch) -> pa.Array:
                mask = parts[0](batch)
                for part in parts[1:]:
                    mask = combine(mask, part(batch))
                return mask

            return both
        if isinstance(node, cond.Compare):
            return self._compare(node)
        if isinstance(node, cond.Column):
            index, kind = self._column(node.name)
            return lambda batch: _truthy(batch.column(index), kind)
        value = self._static(node)
        return _constant(cond.truthy(value))

    def _column(self, name: str) -> tuple[int, pa.DataType]:
        index = self._schema.get_field_index(name)
        if index < 0:
            raise StepFailed(
                f"{self._where}: no column {name!r} (columns: {', '.join(self._schema.names)})"
            )
        return index, self._schema.field(index).type

    def _static(self, node: cond.Node) -> Any:
        """The value of a node without columns (a literal, a reference, a list of them)."""
        if isinstance(node, cond.Const):
            return node.value
        if isinstance(node, cond.Ref):
            return self._reference(node.reference)
        if isinstance(node, cond.ListExpr):
            return [self._static(item) for item in node.items]
        return cond.evaluate(node, self._static)

    def _has_columns(self, node: cond.Node) -> bool:
        return bool(cond.columns(node))

    def _compare(self, node: cond.Compare) -> Mask:
        op, left, right = node.op, node.left, node.right
        lcol, rcol = self._has_columns(left), self._has_columns(right)
        if not lcol and not rcol:
            try:
                return _constant(cond.evaluate(node, self._static))
            except ConditionEvaluationError as exc:
                raise StepFailed(f"{self._where}: {exc}") from None
        if op in ("in", "not in"):
            mask = self._membership(left, right)
        elif isinstance(left, cond.Column) and isinstance(right, cond.Column):
            mask = self._columns(op, left, right)
        elif isinstance(left, cond.Column) and not rcol:
            mask = self._against(op, left, self._static(right))
        elif isinstance(right, cond.Column) and not lcol:
            mask = self._against(_FLIP[op], right, self._static(left))
        else:
            mask = None
        if mask is None:
            return self._row_by_row(node)
        if op == "not in":
            inner = mask
            return lambda batch: pc.invert(inner(batch))
        return mask

    def _against(self, op: str, column: cond.Column, value: Any) -> Mask | None:
        index, kind = self._column(column.name)
        if value is None:
            if op in ("==", "!="):
                test = pc.is_null if op == "==" else pc.is_valid
                return lambda batch: test(batch.column(index))
            return _constant(False)
        if isinstance(value, list | dict):
            return None
        scalar = self._literal(value, kind, column.name)
        compare, when_null = _PC[op], op == "!="
        return lambda batch: pc.fill_null(compare(batch.column(index), scalar), when_null)

    def _columns(self, op: str, left: cond.Column, right: cond.Column) -> Mask | None:
        a, a_kind = self._column(left.name)
        b, b_kind = self._column(right.name)
        if _family(a_kind) != _family(b_kind):
            raise StepFailed(
                f"{self._where}: column {left.name!r} ({describe(a_kind)}) and column "
                f"{right.name!r} ({describe(b_kind)}) cannot be compared"
            )
        compare = _PC[op]
        if op not in ("==", "!="):
            return lambda batch: pc.fill_null(compare(batch.column(a), batch.column(b)), False)

        def equal(batch: pa.RecordBatch) -> pa.Array:
            x, y = batch.column(a), batch.column(b)
            same = pc.or_(
                pc.fill_null(pc.equal(x, y), False), pc.and_(pc.is_null(x), pc.is_null(y))
            )
            return same if op == "==" else pc.invert(same)

        return equal

    def _membership(self, left: cond.Node, right: cond.Node) -> Mask | None:
        if isinstance(left, cond.Column) and not self._has_columns(right):
            items = self._static(right)
            if not isinstance(items, list):
                return None
            index, kind = self._column(left.name)
            values = [self._literal(v, kind, left.name) for v in items if v is not None]
            nulls = None in items
            value_set = pa.array([v.as_py() for v in values], kind) if values else None

            def member(batch: pa.RecordBatch) -> pa.Array:
                column = batch.column(index)
                if value_set is None:
                    found = pa.array([False] * len(column), pa.bool_())
                else:
                    found = pc.fill_null(pc.is_in(column, value_set=value_set), False)
                return pc.or_(found, pc.is_null(column)) if nulls else found

            return member
        if isinstance(right, cond.Column) and not self._has_columns(left):
            text = self._static(left)
            index, kind = self._column(right.name)
            if isinstance(text, str) and _family(kind) == "text":
                return lambda batch: pc.fill_null(
                    pc.match_substring(batch.column(index), text), False
                )
        return None

    def _literal(self, value: Any, kind: pa.DataType, name: str) -> pa.Scalar:
        """``value`` as a scalar comparable with a column of ``kind``; StepFailed when the
        two are of different kinds."""
        family = _family(kind)
        number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        try:
            if family == "number" and number:
                if pa.types.is_decimal(kind):
                    return pa.scalar(
                        Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
                    )
                return pa.scalar(value)
            if family == "text" and isinstance(value, str):
                return pa.scalar(value, pa.string())
            if family == "boolean" and isinstance(value, bool):
                return pa.scalar(value)
            if family == "date" and isinstance(value, str):
                return pa.scalar(date.fromisoformat(value), pa.date32())
            if family == "datetime" and isinstance(value, str):
                moment = datetime.fromisoformat(value)
                tz = kind.tz
                if moment.tzinfo is not None and tz is None:
                    moment = moment.astimezone(UTC).replace(tzinfo=None)
                elif moment.tzinfo is None and tz is not None:
                    moment = moment.replace(tzinfo=UTC)
                return pa.scalar(moment, kind)
        except (ValueError, pa.ArrowException):
            pass
        raise StepFailed(
            f"{self._where}: column {name!r} holds {describe(kind)} and cannot be compared with "
            f"{json_value(value)!r}; convert the column first (type_conversion) or compare "
            "it with a value of its kind"
        )

    def _row_by_row(self, node: cond.Node) -> Mask:
        self.row_by_row = True
        names = cond.columns(node)
        indexes = {name: self._column(name)[0] for name in names}
        resolved: dict[str, Any] = {}

        def lookup_static(ref: cond.Ref) -> Any:
            key = str(ref.reference)
            if key not in resolved:
                resolved[key] = self._reference(ref.reference)
            return resolved[key]

        def mask(batch: pa.RecordBatch) -> pa.Array:
            data = {
                n: [_row_value(v) for v in batch.column(i).to_pylist()] for n, i in indexes.items()
            }
            keep: list[bool] = []
            for row in range(batch.num_rows):

                def lookup(item: cond.Ref | cond.Column, row: int = row) -> Any:
                    if isinstance(item, cond.Column):
                        return data[item.name][row]
                    return lookup_static(item)

                try:
                    keep.append(cond.evaluate(node, lookup))
                except ConditionEvaluationError:
                    keep.append(False)
            return pa.array(keep, pa.bool_())

        return mask


def _row_value(value: Any) -> Any:
    if isinstance(value, Decimal | int | float | str | bool) or value is None:
        return value
    return json_value(value)


def _family(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return _family(kind.value_type)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_timestamp(kind):
        return "datetime"
    return str(kind)


def _truthy(column: pa.Array, kind: pa.DataType) -> pa.Array:
    family = _family(kind)
    if family == "boolean":
        return pc.fill_null(column, False)
    if family == "number":
        return pc.fill_null(pc.not_equal(column, 0), False)
    if family == "text":
        return pc.fill_null(pc.greater(pc.utf8_length(column), 0), False)
    return pc.is_valid(column)


def _constant(value: bool) -> Mask:
    return lambda batch: pa.array([value] * batch.num_rows, pa.bool_())
