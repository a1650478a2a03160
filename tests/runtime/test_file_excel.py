"""Excel through the file step: a workbook LibreOffice saved, both engines, round trips."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.files.helpers import FIXTURES, read, write
from vecron.backends.objectstore import LocalObjectStore
from vecron.errors import StepFailed
from vecron.runtime.steps.files.excelread import read_excel
from vecron.runtime.steps.files.tables import Skips, json_rows
from vecron.stores import Stores

LIBREOFFICE = FIXTURES / "libreoffice.xlsx"
NOV = [
    {
        "invoice_no": 1001.0,
        "customer": "Nguyễn Văn An",
        "amount": 1250000.5,
        "issued_on": "2026-11-02",
        "paid": True,
        "sent_at": "2026-11-02T10:30:00",
        "due": "17:45:00",
        "double": 2500001.0,
    },
    {
        "invoice_no": 1002.0,
        "customer": "Trần Thị Bình",
        "amount": 0.1,
        "issued_on": None,
        "paid": False,
        "sent_at": "2026-11-03T08:05:00",
        "due": None,
        "double": 0.2,
    },
    {
        "invoice_no": 1003.0,
        "customer": None,
        "amount": -879000.25,
        "issued_on": "2026-12-31",
        "paid": None,
        "sent_at": "2026-12-31T23:59:00",
        "due": "08:00:00",
        "double": -1758000.5,
    },
]
DEC = {
    "invoice_no": 1004.0,
    "customer": "Lê Hoàng Cường",
    "amount": 42.0,
    "issued_on": "2026-12-01",
    "paid": True,
    "sent_at": "2026-12-01T00:00:00",
    "due": "12:00:00",
    "double": 84.0,
}


def engine_rows(path: Path, *, in_memory: bool, **options: Any) -> tuple[list[Any], pa.Schema]:
    options.setdefault("sheet", None)
    options.setdefault("has_header", True)
    chunks = list(
        read_excel(
            path,
            label=path.name,
            skip_rows=False,
            skips=Skips(),
            in_memory=in_memory,
            **options,
        )
    )
    return json_rows(c.batch for c in chunks), chunks[0].batch.schema


async def put_fixture(stores: Stores, name: str = "files/lo.xlsx") -> str:
    await stores.objects.put(name, LIBREOFFICE.read_bytes())
    return name


# --- a workbook made by another program --------------------------------------------


async def test_one_sheet_by_name_with_dates_decimals_and_empty_cells(stores: Stores) -> None:
    output = await read(stores.objects, await put_fixture(stores), format="excel", sheet="Nov")
    assert output["data"] == NOV
    assert output["columns"] == list(NOV[0])


async def test_one_sheet_by_index_starting_below_and_right(stores: Stores) -> None:
    output = await read(stores.objects, await put_fixture(stores), format="excel", sheet=1)
    # Alone, the sheet's sent_at holds midnights only: a date column.
    assert output["data"] == [
        {key: DEC[key] for key in output["columns"]} | {"sent_at": "2026-12-01"}
    ]
    assert output["columns"][:2] == ["customer", "invoice_no"]


async def test_all_sheets_with_a_sheet_column(stores: Stores) -> None:
    output = await read(stores.objects, await put_fixture(stores), format="excel")
    assert output["columns"] == ["_sheet", *NOV[0]]
    assert output["data"] == [{"_sheet": "Nov", **row} for row in NOV] + [{"_sheet": "Dec", **DEC}]


@pytest.mark.parametrize("sheet", ["Nov", "Dec", None])
def test_both_engines_read_the_same(sheet: str | None) -> None:
    streamed = engine_rows(LIBREOFFICE, in_memory=False, sheet=sheet)
    assert engine_rows(LIBREOFFICE, in_memory=True, sheet=sheet) == streamed
    assert streamed[1].field("issued_on").type == pa.date32()
    midnights_only = sheet == "Dec"
    assert streamed[1].field("sent_at").type == (
        pa.date32() if midnights_only else pa.timestamp("us")
    )


async def test_a_missing_sheet_lists_the_sheets(stores: Stores) -> None:
    path = await put_fixture(stores)
    with pytest.raises(StepFailed, match=r"no sheet named 'Jan' \(sheets: 'Nov', 'Dec', 'Empty'\)"):
        await read(stores.objects, path, format="excel", sheet="Jan")
    with pytest.raises(StepFailed, match=r"no sheet at index 5 \(the workbook has 3"):
        await read(stores.objects, path, format="excel", sheet=5)


async def test_typed_columns_convert_like_text_does(stores: Stores) -> None:
    output = await read(
        stores.objects,
        await put_fixture(stores),
        format="excel",
        sheet="Nov",
        transformations=[
            {"type": "type_conversion", "column": "amount", "target_type": "decimal", "scale": 2},
            {"type": "type_conversion", "column": "invoice_no", "target_type": "integer"},
            {"type": "filter", "condition": "amount > 0 and issued_on >= '2026-11-01'"},
        ],
    )
    assert [(r["invoice_no"], r["amount"]) for r in output["data"]] == [(1001, "1250000.5")]


# --- broken workbooks and misfit cells ----------------------------------------------


@pytest.mark.parametrize("in_memory", [True, False])
def test_truncated_and_corrupt_workbooks_are_clear_errors(tmp_path: Path, in_memory: bool) -> None:
    data = LIBREOFFICE.read_bytes()
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(StepFailed, match=r"truncated\.xlsx: not a readable Excel workbook"):
        engine_rows(truncated, in_memory=in_memory)
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(LIBREOFFICE) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) // 2]
            target.writestr(item, content)
    with pytest.raises(StepFailed, match=r"broken\.xlsx.* corrupt or truncated"):
        engine_rows(broken, in_memory=in_memory)
    text = tmp_path / "text.xlsx"
    text.write_bytes(b"invoice_no,amount\n1,2\n")
    with pytest.raises(StepFailed, match=r"text\.xlsx: not an Excel workbook"):
        engine_rows(text, in_memory=in_memory)


def workbook(rows: list[list[Any]], title: str = "Data") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_a_late_cell_that_does_not_fit_its_column(stores: Stores) -> None:
    rows: list[list[Any]] = [["id", "amount"]] + [[i, i * 1.5] for i in range(12_000)]
    rows[11_000][1] = "n/a"
    await stores.objects.put("files/late.xlsx", workbook(rows))
    with pytest.raises(
        StepFailed,
        match=r"files/late.xlsx, sheet 'Data', row 11001, column 'amount': 'n/a': text in a "
        r"column of numbers",
    ):
        await read(stores.objects, "files/late.xlsx", format="excel")
    output = await read(stores.objects, "files/late.xlsx", format="excel", on_error="skip_row")
    assert output["row_count"] == 11_999
    assert output["skipped_rows"] == 1
    assert output["skipped"][0]["sheet"] == "Data"


async def test_values_outside_the_header_are_errors(stores: Stores) -> None:
    await stores.objects.put("files/wide.xlsx", workbook([["a", "b"], [1, 2], [3, 4, "note"]]))
    with pytest.raises(StepFailed, match=r"row 3, column 'C': 'note': a value outside the columns"):
        await read(stores.objects, "files/wide.xlsx", format="excel")


async def test_mixed_columns_are_text_as_typed(stores: Stores) -> None:
    rows = [["code"], [1001], ["A-7"], [2.5], [datetime(2026, 1, 2)], [True]]
    await stores.objects.put("files/mixed.xlsx", workbook(rows))
    output = await read(stores.objects, "files/mixed.xlsx", format="excel")
    assert [r["code"] for r in output["data"]] == ["1001", "A-7", "2.5", "2026-01-02", "true"]


# --- writing -----------------------------------------------------------------------


async def test_write_keeps_excel_types_and_text_stays_text(stores: Stores) -> None:
    text = "name,amount,day\n=SUM(A1),1250000.50,2026-11-02\nTrần,12345678901234567890.123456789,\n"
    await stores.objects.put("files/in.csv", text.encode())
    source = await read(
        stores.objects,
        "files/in.csv",
        transformations=[
            {"type": "type_conversion", "column": "amount", "target_type": "decimal"},
            {"type": "type_conversion", "column": "day", "target_type": "date"},
        ],
    )
    output = await write(stores.objects, source, "out.xlsx", format="excel", sheet_name="Báo cáo")
    book = openpyxl.load_workbook(io.BytesIO(await stores.objects.get(output["path"])))
    sheet = book["Báo cáo"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values == [
        ["name", "amount", "day"],
        ["=SUM(A1)", 1250000.5, datetime(2026, 11, 2)],
        ["Trần", "12345678901234567890.123456789", None],
    ]
    assert sheet["A2"].data_type == "s"
    assert sheet["C2"].number_format == "yyyy-mm-dd"


@pytest.mark.parametrize(
    ("sheet_name", "message"),
    [("a" * 32, "cannot be a sheet name"), ("Q1/Q2", "cannot be a sheet name")],
)
async def test_bad_sheet_names(stores: Stores, sheet_name: str, message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        await write(stores.objects, [{"a": 1}], "x.xlsx", format="excel", sheet_name=sheet_name)


async def test_control_characters_are_named_or_skipped(stores: Stores) -> None:
    rows = [{"t": "ok"}, {"t": "bell\x07"}]
    with pytest.raises(StepFailed, match=r"row 2, column 't'.*control characters"):
        await write(stores.objects, rows, "x.xlsx", format="excel")
    output = await write(stores.objects, rows, "x.xlsx", format="excel", on_error="skip_row")
    assert (output["row_count"], output["skipped_rows"]) == (1, 1)


# --- round trip ---------------------------------------------------------------------

_VI = "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ "
_ROW = st.fixed_dictionaries(
    {
        "text": st.text(alphabet=_VI + _VI.upper() + "0123456789,.;\"'", max_size=20),
        "amount": st.decimals(
            allow_nan=False,
            allow_infinity=False,
            places=9,
            min_value=Decimal("-1e28"),
            max_value=Decimal("1e28"),
        ),
        "day": st.dates(min_value=date(1900, 3, 1), max_value=date(9999, 12, 31)),
        "at": st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(9999, 1, 1)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
        ),
        "flag": st.booleans(),
        "when": st.times().map(lambda t: t.replace(microsecond=0)),
    }
)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=6))
async def test_xlsx_to_rows_to_xlsx_round_trip(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]
) -> None:
    objects = LocalObjectStore(tmp_path_factory.mktemp("objects"))
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("text", pa.string()),
                ("amount", pa.decimal128(38, 9)),
                ("day", pa.date32()),
                ("at", pa.timestamp("us")),
                ("flag", pa.bool_()),
                ("when", pa.time64("us")),
            ]
        ),
    )
    local = tmp_path_factory.mktemp("in") / "in.parquet"
    pq.write_table(table, local)
    await objects.put_file("files/in.parquet", local)
    first = await write(objects, {"path": "files/in.parquet"}, "one.xlsx", format="excel")
    step: dict[str, Any] = {
        "transformations": [
            {"type": "type_conversion", "column": "amount", "target_type": "decimal"},
            {"type": "type_conversion", "column": "at", "target_type": "datetime"},
        ]
    }
    back = await read(objects, first["path"], format="excel", **step)
    second = await write(objects, back, "two.xlsx", format="excel")
    again = await read(objects, second["path"], format="excel", **step)
    expected = json_rows(table.to_batches())
    for row in expected:
        row["text"] = row["text"] or None  # Excel has no empty text: it is an empty cell
    assert back["data"] == expected
    assert again["data"] == expected
