"""CSV through the file step, on the real stores: real-world files in, exact files out."""

from __future__ import annotations

import csv
import io
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.files.helpers import read, write
from vecron.backends.objectstore import LocalObjectStore
from vecron.errors import StepFailed
from vecron.runtime.steps.files.csvwrite import for_codec
from vecron.stores import Stores

INVOICES = (
    "invoice_no,customer,amount,issued_on\n"
    "INV-1,Nguyễn Văn An,1250000.50,2026-11-02\n"
    "INV-2,Trần Thị Bình,0,2026-11-03\n"
)
ROWS = [
    {
        "invoice_no": "INV-1",
        "customer": "Nguyễn Văn An",
        "amount": "1250000.50",
        "issued_on": "2026-11-02",
    },
    {"invoice_no": "INV-2", "customer": "Trần Thị Bình", "amount": "0", "issued_on": "2026-11-03"},
]


def encoded(text: str, encoding: str) -> bytes:
    """``text`` as a program writing ``encoding`` would store it (cp1258 decomposes)."""
    return for_codec(text, encoding).encode(encoding)


async def put(stores: Stores, path: str, data: bytes) -> str:
    await stores.objects.put(path, data)
    return path


# --- reading real-world files ------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1258", "utf-16"])
async def test_encodings_read_exactly(stores: Stores, encoding: str) -> None:
    path = await put(stores, "files/in.csv", encoded(INVOICES, encoding))
    output = await read(stores.objects, path, encoding=encoding)
    assert output["data"] == ROWS
    assert output["columns"] == ["invoice_no", "customer", "amount", "issued_on"]


async def test_a_byte_order_mark_is_dropped_even_as_utf8(stores: Stores) -> None:
    path = await put(stores, "files/bom.csv", INVOICES.encode("utf-8-sig"))
    output = await read(stores.objects, path)
    assert output["columns"][0] == "invoice_no"


async def test_cp1252_text(stores: Stores) -> None:
    text = "name;price\nCafé Müller;€ 4,50\n"
    path = await put(stores, "files/w.csv", text.encode("cp1252"))
    output = await read(stores.objects, path, encoding="cp1252", delimiter=";")
    assert output["data"] == [{"name": "Café Müller", "price": "€ 4,50"}]


async def test_cp1258_is_normalised_so_filters_match_typed_text(stores: Stores) -> None:
    raw = b"name\nNguy\xea\xden V\xe3n An\n"  # \xea = ê, \xde = a combining tilde
    path = await put(stores, "files/vn.csv", raw)
    output = await read(
        stores.objects,
        path,
        encoding="cp1258",
        transformations=[{"type": "filter", "condition": "name == 'Nguyễn Văn An'"}],
    )
    assert output["data"] == [{"name": "Nguyễn Văn An"}]


async def test_bytes_that_are_not_the_encoding_name_the_line(stores: Stores) -> None:
    path = await put(stores, "files/bad.csv", b"a,b\n1,2\n3,caf\xe9\n")
    with pytest.raises(StepFailed, match=r"files/bad.csv, line 3: .*not valid UTF-8.*cp1252"):
        await read(stores.objects, path)
    path = await put(stores, "files/bad2.csv", b"a,b\n1,\x81\n")
    with pytest.raises(StepFailed, match=r"files/bad2.csv, line 2: byte 81 .*not cp1252 text"):
        await read(stores.objects, path, encoding="cp1252")


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
async def test_quoting_per_rfc_4180_with_any_delimiter(stores: Stores, delimiter: str) -> None:
    rows = [["id", "note"], ["1", f'he said "hi"{delimiter} then\nleft'], ["2", ""]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path = await put(stores, "files/q.csv", buffer.getvalue().encode())
    output = await read(stores.objects, path, delimiter=delimiter)
    assert output["data"] == [
        {"id": "1", "note": f'he said "hi"{delimiter} then\nleft'},
        {"id": "2", "note": ""},
    ]


@pytest.mark.parametrize("dialect", csv.list_dialects())
async def test_files_written_by_pythons_csv_module(stores: Stores, dialect: str) -> None:
    rows = [["code", "text"], ["007", 'Lê, "Hoàng"'], ["8", "x\ny"], ["9", ""]]
    buffer = io.StringIO()
    csv.writer(buffer, dialect=dialect).writerows(rows)
    path = await put(stores, f"files/{dialect}.csv", buffer.getvalue().encode())
    delimiter = csv.get_dialect(dialect).delimiter
    output = await read(stores.objects, path, delimiter=delimiter)
    assert [[r["code"], r["text"]] for r in output["data"]] == rows[1:]


async def test_without_a_header(stores: Stores) -> None:
    path = await put(stores, "files/nh.csv", b"1,a\n2,b\n")
    output = await read(stores.objects, path, has_header=False)
    assert output["data"] == [
        {"column_1": "1", "column_2": "a"},
        {"column_1": "2", "column_2": "b"},
    ]


async def test_header_names_are_made_unique(stores: Stores) -> None:
    path = await put(stores, "files/dup.csv", b"a,a,,b\n1,2,3,4\n")
    output = await read(stores.objects, path)
    assert output["columns"] == ["a", "a_2", "column_3", "b"]


@pytest.mark.parametrize("content", [b"", b"a,b\n"])
async def test_an_empty_file_reads_as_no_rows(stores: Stores, content: bytes) -> None:
    path = await put(stores, "files/empty.csv", content)
    output = await read(stores.objects, path)
    assert output["row_count"] == 0
    assert output["data"] == []
    assert output["columns"] == ([] if not content else ["a", "b"])


async def test_a_short_row_fails_with_its_row_number(stores: Stores) -> None:
    path = await put(stores, "files/short.csv", b'a,b\n1,2\n\n"x\ny",3\n4\n5,6\n')
    with pytest.raises(
        StepFailed, match=r"files/short.csv, row 4: 1 fields where the header has 2"
    ):
        await read(stores.objects, path)


async def test_skip_row_skips_malformed_rows_and_counts_them(stores: Stores) -> None:
    path = await put(stores, "files/short.csv", b"a,b\n1,2\n3\n4,5,6\n7,8\n")
    output = await read(stores.objects, path, on_error="skip_row")
    assert output["data"] == [{"a": "1", "b": "2"}, {"a": "7", "b": "8"}]
    assert output["skipped_rows"] == 2
    assert "1 fields where 2 were expected" in output["skipped"][0]["error"]
    assert output["skipped"][0]["file"] == "files/short.csv"


# --- writing -----------------------------------------------------------------------


async def test_write_encodings_and_exact_text(stores: Stores) -> None:
    rows = [{"name": "Nguyễn Văn Đức", "amount": "1250000.50", "note": None, "empty": ""}]
    for encoding in ("utf-8", "utf-8-sig", "cp1258"):
        output = await write(
            stores.objects, rows, f"out-{encoding}.csv", format="csv", encoding=encoding
        )
        data = await stores.objects.get(output["path"])
        text = data.decode(encoding)
        assert (
            text.replace("\ufeff", "")
            == ('"name","amount","note","empty"\n"Nguyễn Văn Đức","1250000.50",,""\n')
            or encoding == "cp1258"
        )
        assert data.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
        back = await read(stores.objects, output["path"], encoding=encoding)
        assert back["data"] == [
            {"name": "Nguyễn Văn Đức", "amount": "1250000.50", "note": "", "empty": ""}
        ]


async def test_a_value_the_encoding_cannot_hold_names_its_row(stores: Stores) -> None:
    rows = [{"name": "Café"}, {"name": "東京"}, {"name": "Ok"}]
    with pytest.raises(
        StepFailed, match=r"row 2, column 'name': '東京' cannot be written in cp1252"
    ):
        await write(stores.objects, rows, "x.csv", format="csv", encoding="cp1252")
    output = await write(
        stores.objects, rows, "x.csv", format="csv", encoding="cp1252", on_error="skip_row"
    )
    assert output["row_count"] == 2
    assert output["skipped_rows"] == 1


async def test_typed_values_are_written_as_people_write_them(stores: Stores) -> None:
    read_out = await read(
        stores.objects,
        await put(
            stores, "files/t.csv", b"a,d,t,f\n1250000.500,2026-11-02,2026-11-02 10:30:00,true\n"
        ),
        transformations=[
            {"type": "type_conversion", "column": "a", "target_type": "decimal"},
            {"type": "type_conversion", "column": "d", "target_type": "date"},
            {"type": "type_conversion", "column": "t", "target_type": "datetime"},
            {"type": "type_conversion", "column": "f", "target_type": "boolean"},
        ],
    )
    output = await write(stores.objects, read_out, "typed.csv", format="csv", delimiter=";")
    assert await stores.objects.get(output["path"]) == (
        b'"a";"d";"t";"f"\n"1250000.5";2026-11-02;"2026-11-02T10:30:00";true\n'
    )


# --- round trips -------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.sampled_from(
        list(string.ascii_letters + string.digits + " ,;\"'\n\t")
        + list("ăâđêôơưĂÂĐÊÔƠƯàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ")
    ),
    max_size=12,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            _TEXT,
            _TEXT,
            st.decimals(
                allow_nan=False,
                allow_infinity=False,
                places=4,
                min_value=Decimal("-1e20"),
                max_value=Decimal("1e20"),
            ),
        ),
        min_size=1,
        max_size=8,
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1258"]),
)
async def test_csv_to_rows_to_csv_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, str, Decimal]],
    delimiter: str,
    encoding: str,
) -> None:
    objects = LocalObjectStore(tmp_path_factory.mktemp("objects"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["text", "more", "amount"])
    writer.writerows([[a, b, str(n)] for a, b, n in rows])
    await objects.put("files/in.csv", encoded(buffer.getvalue(), encoding))
    first = await read(
        objects,
        "files/in.csv",
        delimiter=delimiter,
        encoding=encoding,
        transformations=[
            {"type": "type_conversion", "column": "amount", "target_type": "decimal", "scale": 4}
        ],
    )
    written = await write(
        objects, first, "out.csv", format="csv", delimiter=delimiter, encoding=encoding
    )
    again = await read(objects, written["path"], delimiter=delimiter, encoding=encoding)
    expected: list[dict[str, Any]] = [
        {"text": a, "more": b, "amount": format(n.normalize(), "f")} for a, b, n in rows
    ]
    for row in expected:
        row["amount"] = (
            row["amount"].rstrip("0").rstrip(".") if "." in row["amount"] else row["amount"]
        )
        row["amount"] = "0" if row["amount"] in ("-0", "") else row["amount"]
    assert first["data"] == expected
    assert again["data"] == expected
