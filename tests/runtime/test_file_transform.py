"""Transformations on record batches: conversions, filters, renames, selections."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from vecron.errors import StepFailed
from vecron.runtime.steps.files.tables import Chunk, Skips
from vecron.runtime.steps.files.transform import Transformer
from vecron.spec.models import FileReadConfig
from vecron.spec.references import Reference


def transform(
    columns: dict[str, list[Any]],
    *steps: dict[str, Any],
    skip: bool = False,
    refs: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], Skips, Transformer]:
    spec = FileReadConfig.model_validate(
        {"operation": "read", "format": "csv", "source_path": "x", "transformations": list(steps)}
    )
    skips = Skips()

    def reference(ref: Reference) -> Any:
        return (refs or {})[str(ref)]

    transformer = Transformer(
        spec.transformations, skip_rows=skip, skips=skips, reference=reference
    )
    batch = pa.RecordBatch.from_pydict(columns)
    out = transformer.apply(Chunk(batch=batch, file="in.csv", first_row=2))
    return out.batch.to_pylist(), skips, transformer


def conv(column: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"type": "type_conversion", "column": column, "target_type": target, **extra}


def where(condition: str) -> dict[str, Any]:
    return {"type": "filter", "condition": condition}


# --- type_conversion ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "text", "expected"),
    [
        ("integer", [" 42 ", "+7", "-3", "", None], [42, 7, -3, None, None]),
        (
            "decimal",
            ["1250000.50", "-0.000000001", " 1e3", "", "12345678901234567890.123456789"],
            [
                Decimal("1250000.5"),
                Decimal("-1E-9"),
                Decimal(1000),
                None,
                Decimal("12345678901234567890.123456789"),
            ],
        ),
        ("float", ["1.5", "-2e3", " "], [1.5, -2000.0, None]),
        (
            "boolean",
            ["true", "FALSE", "Yes", "n", "1", "0", ""],
            [True, False, True, False, True, False, None],
        ),
        ("date", ["2026-11-02", ""], [date(2026, 11, 2), None]),
        (
            "datetime",
            ["2026-11-02T10:30:00", "2026-11-02 10:30:00.5", "2026-11-02T10:30:00+07:00"],
            [
                datetime(2026, 11, 2, 10, 30),
                datetime(2026, 11, 2, 10, 30, 0, 500000),
                datetime(2026, 11, 2, 3, 30),
            ],
        ),
        ("string", [" keep  ", ""], [" keep  ", ""]),
    ],
)
def test_text_converts_to_every_type(target: str, text: list[Any], expected: list[Any]) -> None:
    rows, _, _ = transform({"v": text}, conv("v", target))
    assert [row["v"] for row in rows] == expected


def test_dates_with_a_format() -> None:
    rows, _, _ = transform(
        {"d": ["02/11/2026", "31/12/2025"], "t": ["02/11/2026 10:05", "31/12/2025 23:59"]},
        conv("d", "date", format="%d/%m/%Y"),
        conv("t", "datetime", format="%d/%m/%Y %H:%M"),
    )
    assert rows[0] == {"d": date(2026, 11, 2), "t": datetime(2026, 11, 2, 10, 5)}


def test_conversions_between_types() -> None:
    rows, _, _ = transform(
        {
            "amount": [Decimal("12.50"), Decimal(3)],
            "flag": [1, 0],
            "when": [datetime(2026, 1, 2, 3, 4), datetime(2026, 5, 6)],
            "ratio": [0.1, 2.5],
        },
        conv("amount", "string"),
        conv("flag", "boolean"),
        conv("when", "date"),
        conv("ratio", "decimal", scale=2),
    )
    assert rows == [
        {"amount": "12.5", "flag": True, "when": date(2026, 1, 2), "ratio": Decimal("0.10")},
        {"amount": "3", "flag": False, "when": date(2026, 5, 6), "ratio": Decimal("2.50")},
    ]


@pytest.mark.parametrize(
    ("target", "values", "bad", "reason"),
    [
        ("integer", ["1", "2", "4.5"], "'4.5'", "not a whole number"),
        ("decimal", ["1", "1.1234567891"], "'1.1234567891'", "more than 9 digits after the point"),
        ("decimal", ["1", "1,5"], "'1,5'", "not a decimal number"),
        ("boolean", ["true", "maybe"], "'maybe'", "not a boolean"),
        ("date", ["2026-11-02", "2026-13-01"], "'2026-13-01'", "not a date"),
        ("float", ["1", "abc"], "'abc'", "not a number"),
    ],
)
def test_a_value_that_does_not_convert_names_file_row_column_and_value(
    target: str, values: list[str], bad: str, reason: str
) -> None:
    with pytest.raises(StepFailed) as failure:
        transform({"id": ["a", "b", "c"][: len(values)], "v": values}, conv("v", target))
    row = 2 + values.index(bad.strip("'"))
    message = str(failure.value)
    assert f"in.csv, row {row}, column 'v'" in message
    assert bad in message
    assert reason in message


def test_skip_row_drops_and_counts_every_bad_value() -> None:
    values = [str(i) if i % 3 else f"x{i}" for i in range(1000)]
    rows, skips, _ = transform(
        {"n": list(range(1000)), "v": values}, conv("v", "integer"), skip=True
    )
    assert skips.count == 334
    assert len(rows) == 666
    assert all(row["v"] == row["n"] for row in rows)
    assert skips.examples[0] == {
        "file": "in.csv",
        "row": 2,
        "column": "v",
        "error": "'x0': not a whole number in the 64-bit range",
    }
    assert len(skips.examples) == 20


def test_rows_keep_their_numbers_through_filters() -> None:
    with pytest.raises(StepFailed, match=r"row 5, column 'v'"):
        transform(
            {"keep": [True, False, False, True], "v": ["1", "x", "y", "z"]},
            where("keep"),
            conv("v", "integer"),
        )


def test_a_conversion_that_makes_no_sense_fails_for_the_column() -> None:
    with pytest.raises(StepFailed, match="cannot convert a column of dates to integer"):
        transform({"d": [date(2026, 1, 1)]}, conv("d", "integer"))


# --- column_mapping and select ------------------------------------------------------


def test_rename_and_select() -> None:
    rows, _, _ = transform(
        {"a": [1], "b": [2], "c": [3]},
        {"type": "column_mapping", "from": "a", "to": "x"},
        {"type": "select", "columns": ["c", "x"]},
    )
    assert rows == [{"c": 3, "x": 1}]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"type": "column_mapping", "from": "nope", "to": "x"},
            "no column 'nope' \\(columns: a, b\\)",
        ),
        ({"type": "column_mapping", "from": "a", "to": "b"}, "already is a column 'b'"),
        ({"type": "select", "columns": ["a", "zz"]}, "no column 'zz'"),
    ],
)
def test_rename_and_select_name_missing_columns(step: dict[str, Any], message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        transform({"a": [1], "b": [2]}, step)


# --- filter ------------------------------------------------------------------------


def test_filter_on_typed_columns() -> None:
    rows, _, transformer = transform(
        {
            "amount": ["0", "12.5", "3", None],
            "paid": ["true", "true", "false", "true"],
            "day": ["2026-11-01", "2026-11-03", "2026-11-05", "2026-11-07"],
            "name": ["Nguyễn", "Trần", "Lê", None],
        },
        conv("amount", "decimal"),
        conv("paid", "boolean"),
        conv("day", "date"),
        where("paid == true and amount > 0 and day >= '2026-11-02' and name != null"),
    )
    assert [row["name"] for row in rows] == ["Trần"]
    assert not transformer.row_by_row


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("n > 1", [2, 3]),
        ("n >= 2.5", [3]),
        ("not (n == 2)", [1, 3, None]),
        ("n != 2", [1, 3, None]),  # a null is not 2
        ("n == null", [None]),
        ("n < 10", [1, 2, 3]),  # an ordering with a null is false
        ("n in [1, 3, null]", [1, 3, None]),
        ("n not in [1, 3]", [2, None]),
        ("`first name` == 'b' or n == 1", [1, 2]),
        ("'o' in `first name`", [3]),
        ("n", [1, 2, 3]),
        ("n > {{ steps.a.output.min }}", [3]),
    ],
)
def test_filter_semantics(condition: str, expected: list[Any]) -> None:
    rows, _, transformer = transform(
        {"n": [1, 2, 3, None], "first name": ["a", "b", "bob", None]},
        where(condition),
        refs={"steps.a.output.min": 2},
    )
    assert [row["n"] for row in rows] == expected
    assert not transformer.row_by_row


def test_a_column_inside_another_is_evaluated_row_by_row() -> None:
    rows, _, transformer = transform(
        {"code": ["AB", "XY", None], "text": ["xABx", "nothing", "z"]}, where("code in text")
    )
    assert rows == [{"code": "AB", "text": "xABx"}]
    assert transformer.row_by_row


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            "amount > '5'",
            "column 'amount' holds decimals\\(38, 9\\) and cannot be compared with '5'",
        ),
        ("name == 5", "column 'name' holds text"),
        ("day > 'soon'", "column 'day' holds dates"),
        ("missing == 1", "no column 'missing'"),
        ("amount == name", "cannot be compared"),
    ],
)
def test_filters_that_could_never_match_are_errors(condition: str, message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        transform(
            {"amount": ["1"], "name": ["x"], "day": ["2026-01-01"]},
            conv("amount", "decimal"),
            conv("day", "date"),
            where(condition),
        )


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (conv("v", "integer", format="%d"), "format applies to date and datetime"),
        (conv("v", "float", scale=2), "scale applies to decimal"),
    ],
)
def test_options_of_another_target_are_errors(step: dict[str, Any], message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        transform({"v": ["1"]}, step)
