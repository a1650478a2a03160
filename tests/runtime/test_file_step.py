"""The file step as the worker runs it, on the real stores: chains, outputs, streaming."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.files.helpers import config, read, step_run, write
from vecron.backends.database import ExecutionStatus, TriggerSource
from vecron.backends.objectstore import LocalObjectStore
from vecron.backends.queue import MemoryQueue
from vecron.errors import StepFailed
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.runtime.steps.base import StepExecutor
from vecron.runtime.steps.database import DatabaseStepExecutor
from vecron.runtime.steps.files import FileStepExecutor
from vecron.runtime.steps.files.csvfile import read_csv
from vecron.runtime.steps.files.tables import Skips
from vecron.runtime.trigger import create_execution
from vecron.runtime.worker import Worker, enqueue
from vecron.stores import Stores

REPO = Path(__file__).resolve().parents[2]
OUTPUT = "jobs/job-1/executions/exec-1/output/"
INVOICES = (REPO / "jobs-example" / "files" / "invoices.csv").read_bytes()
PARSE = [
    {"type": "type_conversion", "column": "amount", "target_type": "decimal", "scale": 2},
    {"type": "type_conversion", "column": "issued_on", "target_type": "date"},
    {"type": "type_conversion", "column": "paid", "target_type": "boolean"},
    {"type": "filter", "condition": "paid == true and amount > 0"},
    {"type": "column_mapping", "from": "invoice_no", "to": "invoice_id"},
    {"type": "select", "columns": ["invoice_id", "customer", "amount", "issued_on"]},
]


async def parquet_rows(stores: Stores, path: str) -> pa.Table:
    return pq.read_table(io.BytesIO(await stores.objects.get(path)))


# --- outputs and chains -------------------------------------------------------------


async def test_read_then_write_parquet_keeps_types(stores: Stores) -> None:
    await stores.objects.put("files/invoices.csv", INVOICES)
    parsed = await read(stores.objects, "files/invoices.csv", transformations=PARSE)
    assert parsed["path"] == "files/invoices.csv"
    assert parsed["files"] == [
        {"path": "files/invoices.csv", "filename": "invoices.csv", "size": len(INVOICES)}
    ]
    assert parsed["row_count"] == 3
    assert parsed["data"][0] == {
        "invoice_id": "INV-1001",
        "customer": "Nguyễn Văn An",
        "amount": "1250000.5",
        "issued_on": "2026-11-02",
    }
    assert parsed["result"]["path"] == OUTPUT + "read.arrow"
    stored = await write(stores.objects, parsed, "invoices.parquet", format="parquet")
    assert stored["path"] == OUTPUT + "invoices.parquet"
    info = await stores.objects.stat(stored["path"])
    assert stored["files"] == [
        {"path": stored["path"], "filename": "invoices.parquet", "size": info.size}
    ]
    table = await parquet_rows(stores, stored["path"])
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    assert table.column("amount").to_pylist()[0] == Decimal("1250000.50")
    assert table.column("issued_on").to_pylist()[0] == date(2026, 11, 2)


async def test_large_results_stay_files_that_later_steps_stream(stores: Stores) -> None:
    await stores.objects.put("files/invoices.csv", INVOICES)
    parsed = await read(stores.objects, "files/invoices.csv", max_inline_rows=2)
    assert parsed["row_count"] == 5
    assert parsed["data"] is None
    written = await write(stores.objects, parsed, "all.csv", format="csv", max_inline_rows=0)
    assert written["data"] is None
    assert written["row_count"] == 5
    assert (await stores.objects.get(written["path"])).count(b"\n") == 6


async def test_rows_from_a_database_step_keep_its_column_order(stores: Stores) -> None:
    output = {
        "rows": [{"b": 1, "a": "x"}, {"b": 2.5, "a": None, "c": True}],
        "columns": ["b", "a"],
        "row_count": 2,
    }
    written = await write(stores.objects, output, "db.csv", format="csv")
    assert written["columns"] == ["b", "a", "c"]
    assert await stores.objects.get(written["path"]) == b'"b","a","c"\n1,"x",\n2.5,,true\n'


async def test_several_downloaded_files_are_read_in_turn(stores: Stores) -> None:
    await stores.objects.put("files/in/a.csv", b"id,n\n1,a\n")
    await stores.objects.put("files/in/b.csv", b"n,id\nb,2\n")
    sftp = {
        "files": [{"path": "files/in/a.csv"}, {"path": "files/in/b.csv"}],
        "file_count": 2,
    }
    run = step_run(stores.objects, steps={"download": sftp})
    step = config(operation="read", format="csv", source_path="{{steps.download.output.files}}")
    output = await FileStepExecutor().run(step, run)
    assert output["data"] == [{"id": "1", "n": "a"}, {"id": "2", "n": "b"}]
    await stores.objects.put("files/in/c.csv", b"other\nx\n")
    sftp["files"].append({"path": "files/in/c.csv"})
    with pytest.raises(StepFailed, match=r"files/in/c.csv: its columns \['other'\] differ"):
        await FileStepExecutor().run(step, step_run(stores.objects, steps={"download": sftp}))


async def test_references_in_paths_and_filters(stores: Stores) -> None:
    await stores.objects.put("files/acme/invoices.csv", INVOICES)
    run = step_run(
        stores.objects,
        steps={"limits": {"min": 4200}},
        variables={"PARTNER": "acme"},
    )
    step = config(
        operation="read",
        format="csv",
        source_path="files/${PARTNER}/invoices.csv",
        transformations=[
            {"type": "type_conversion", "column": "amount", "target_type": "float"},
            {"type": "filter", "condition": "amount >= {{steps.limits.output.min}}"},
        ],
    )
    output = await FileStepExecutor().run(step, run)
    assert [row["invoice_no"] for row in output["data"]] == [
        "INV-1001",
        "INV-1003",
        "INV-1004",
        "INV-1005",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"destination_path": "sub/x.csv"}, "destination_path 'sub/x.csv' must be a file name"),
        ({"destination_path": "../x.csv"}, "must be a file name"),
        ({"data_source": "{{steps.earlier.output.nope}}"}, "nope"),
    ],
)
async def test_write_refusals(stores: Stores, fields: dict[str, Any], message: str) -> None:
    step = config(
        **{
            "operation": "write",
            "format": "csv",
            "destination_path": "x.csv",
            "data_source": "{{steps.earlier.output}}",
            **fields,
        }
    )
    with pytest.raises(Exception, match=message):
        await FileStepExecutor().run(step, step_run(stores.objects, steps={"earlier": [{"a": 1}]}))


async def test_a_missing_source_names_its_path(stores: Stores) -> None:
    with pytest.raises(StepFailed, match=r"no file at 'files/nope\.csv' in the object store"):
        await read(stores.objects, "files/nope.csv")


async def test_skipped_rows_are_counted_in_the_output(stores: Stores) -> None:
    await stores.objects.put("files/n.csv", b"n\n1\nx\n3\ny\n")
    output = await read(
        stores.objects,
        "files/n.csv",
        on_error="skip_row",
        transformations=[{"type": "type_conversion", "column": "n", "target_type": "integer"}],
    )
    assert output["data"] == [{"n": 1}, {"n": 3}]
    assert output["skipped_rows"] == 2
    assert [s["row"] for s in output["skipped"]] == [3, 5]


# --- streaming ----------------------------------------------------------------------


def big_csv(path: Path, rows: int) -> None:
    line = "INV-{:08d},Nguyễn Văn An,1250000.50,2026-11-02,true,note with, a comma\n"
    block = "".join(line.replace(",", ";", 5).format(i) for i in range(10_000))
    with path.open("w", encoding="utf-8") as file:
        file.write("invoice_no;customer;amount;issued_on;paid;note\n")
        for _ in range(rows // 10_000):
            file.write(block)


def test_reading_streams_batch_by_batch_in_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    big_csv(source, 1_400_000)  # 105 MB; Arrow reads ahead a fixed number of 1 MiB blocks
    peak, batches, rows = 0, 0, 0
    baseline = pa.total_allocated_bytes()
    for chunk in read_csv(
        source,
        label="big.csv",
        delimiter=";",
        encoding="utf-8",
        has_header=True,
        skip_rows=False,
        skips=Skips(),
    ):
        batches += 1
        rows += chunk.batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - baseline)
        del chunk
    assert rows == 1_400_000
    assert batches > 50
    assert peak < 48 * 1024 * 1024, f"Arrow held {peak / 2**20:.0f} MiB at once"


async def test_a_cancelled_step_stores_nothing(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    source = tmp_path / "big.csv"
    big_csv(source, 600_000)
    await objects.put_file("files/big.csv", source)
    step = config(operation="read", format="csv", source_path="files/big.csv", delimiter=";")
    task = asyncio.ensure_future(FileStepExecutor().run(step, step_run(objects, step_id="big")))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [info.path async for info in objects.list("jobs/")] == []


# --- round trip ---------------------------------------------------------------------

_VI = "aăâđeêoôơuưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ ,;\"'\n"
_ROWS = st.lists(
    st.tuples(
        st.text(alphabet=_VI, max_size=15),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=9, min_value=-(10**28), max_value=10**28
        ),
        st.dates(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
    ),
    max_size=10,
)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_ROWS)
async def test_parquet_to_rows_to_parquet_round_trip(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, Decimal, date, int]]
) -> None:
    objects = LocalObjectStore(tmp_path_factory.mktemp("objects"))
    schema = pa.schema(
        [
            ("text", pa.string()),
            ("amount", pa.decimal128(38, 9)),
            ("day", pa.date32()),
            ("n", pa.int64()),
        ]
    )
    table = pa.Table.from_pylist(
        [dict(zip(schema.names, row, strict=True)) for row in rows], schema=schema
    )
    local = tmp_path_factory.mktemp("in") / "in.parquet"
    pq.write_table(table, local)
    await objects.put_file("files/in.parquet", local)
    first = await read(objects, "files/in.parquet", format="parquet")
    written = await write(objects, first, "out.parquet", format="parquet")
    back = pq.read_table(io.BytesIO(await objects.get(written["path"])))
    assert back.equals(table)
    assert first["row_count"] == len(rows)


# --- the example jobs, end to end ---------------------------------------------------


@pytest.fixture
async def file_executors() -> AsyncIterator[dict[str, StepExecutor]]:
    database = DatabaseStepExecutor()
    try:
        yield {"database": database, "file_processing": FileStepExecutor()}
    finally:
        await database.close()


async def test_the_example_jobs_run(
    stores: Stores, tmp_path: Path, file_executors: dict[str, StepExecutor]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "jobs-example", repo)
    variables = (repo / "variables.yaml").read_text(encoding="utf-8")
    database = tmp_path / "reports.db"
    (repo / "variables.yaml").write_text(
        variables.replace(
            "sqlite:///.vecron/example-reports.db?create=true", f"sqlite:///{database}?create=true"
        ),
        encoding="utf-8",
    )
    await sync_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
    queue = MemoryQueue(ack_wait_seconds=30)
    worker = Worker(stores=stores, queue=queue, executors=file_executors, backoff=lambda _: 0.0)
    records = {}
    for job in ("prepare-report-db", "invoice-import", "daily-sales-report"):
        record = await create_execution(stores.database, job, trigger_source=TriggerSource.MANUAL)
        await enqueue(queue, record)
        while deliveries := await queue.fetch(batch=1, timeout_seconds=0.2):
            for delivery in deliveries:
                await worker.process(delivery)
        records[job] = await stores.database.get_execution(record.execution_id)
        assert records[job].status == ExecutionStatus.SUCCEEDED, records[job].error
    imported = records["invoice-import"]
    output = f"jobs/{imported.job_id}/executions/{imported.execution_id}/output/"
    names = [info.path async for info in stores.objects.list(output)]
    parquet = next(name for name in names if name.endswith(".parquet"))
    table = await parquet_rows(stores, parquet)
    assert table.column("invoice_id").to_pylist() == ["INV-1001", "INV-1003", "INV-1005"]
    report = records["daily-sales-report"]
    prefix = f"jobs/{report.job_id}/executions/{report.execution_id}/output/"
    (workbook,) = [info.path async for info in stores.objects.list(prefix)]
    assert workbook.endswith(".xlsx")
