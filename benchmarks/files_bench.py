"""The file step against the bare libraries doing the same work, and its memory on big files.

Part 1, rows/s in one process on the same files, best of ``--runs``:

- CSV read: vecron's reader against ``pyarrow.csv.open_csv`` with the same options
  (every column as text, quotes may hold line breaks), both streaming;
- transform: vecron's transformations (decimal, date and boolean conversions, a
  filter, a select) against the same pyarrow.compute calls written by hand;
- CSV write: vecron's writer against ``pyarrow.csv.CSVWriter``;
- XLSX write: vecron's writer against openpyxl's write-only mode appending the same rows;
- XLSX read: vecron's reader with each engine against the bare engine (openpyxl
  read-only ``iter_rows(values_only=True)``; python-calamine ``iter_rows``).

The ratio is vecron's rows/s over the bare library's (goal: >= 0.8 for CSV, >= 0.9 for
XLSX). Part 2 runs whole steps as the worker does (object store in and out): CSV to
Parquet and CSV to CSV, each in a child process, for growing files up to ``--big-gb``,
and prints the child's peak RSS (goal: under 300 MB for 1 GB, flat as files grow).
Figures only; nothing is asserted.

    .venv/bin/python benchmarks/files_bench.py [--rows 1000000] [--xlsx-rows 50000]
        [--runs 3] [--big-gb 1.0] [--skip-big | --big-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from python_calamine import CalamineWorkbook

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.runtime.files.helpers import read, write  # noqa: E402
from vecron.backends.objectstore import LocalObjectStore  # noqa: E402
from vecron.runtime.steps.files.csvfile import BLOCK_BYTES, read_csv  # noqa: E402
from vecron.runtime.steps.files.csvwrite import CsvWriter  # noqa: E402
from vecron.runtime.steps.files.excelread import read_excel  # noqa: E402
from vecron.runtime.steps.files.excelwrite import ExcelWriter  # noqa: E402
from vecron.runtime.steps.files.tables import Chunk, Skips  # noqa: E402
from vecron.runtime.steps.files.transform import Transformer  # noqa: E402
from vecron.spec.models import FileReadConfig  # noqa: E402

COLUMNS = ["invoice_no", "customer", "amount", "currency", "issued_on", "paid", "note"]
_CUSTOMERS = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Acme Trading Ltd"]
TRANSFORMATIONS = [
    {"type": "type_conversion", "column": "amount", "target_type": "decimal", "scale": 2},
    {"type": "type_conversion", "column": "issued_on", "target_type": "date"},
    {"type": "type_conversion", "column": "paid", "target_type": "boolean"},
    {"type": "filter", "condition": "paid == true and amount > 100"},
    {"type": "select", "columns": ["invoice_no", "customer", "amount", "issued_on"]},
]


def block(rows: int, start: int = 0) -> str:
    """``rows`` CSV lines of invoices (quoted notes with commas), numbered from ``start``."""
    lines = []
    for i in range(start, start + rows):
        lines.append(
            f"INV-{i:09d},{_CUSTOMERS[i % 4]},{(i * 7919) % 100_000_000 / 100:.2f},VND,"
            f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d},{'true' if i % 3 else 'false'},"
            f'"note {i % 1000}, with a comma"\n'
        )
    return "".join(lines)


def make_csv(path: Path, rows: int) -> None:
    chunk = block(min(rows, 20_000))
    with path.open("w", encoding="utf-8") as file:
        file.write(",".join(COLUMNS) + "\n")
        written = 0
        while written < rows:
            take = min(20_000, rows - written)
            file.write(chunk if take == 20_000 else block(take))
            written += take


def make_csv_of_size(path: Path, size: int) -> int:
    """A CSV of about ``size`` bytes; returns its row count."""
    chunk = block(20_000)
    rows = 0
    with path.open("w", encoding="utf-8") as file:
        file.write(",".join(COLUMNS) + "\n")
        while file.tell() < size:
            file.write(chunk)
            rows += 20_000
    return rows


def best(runs: int, function: Callable[[], int]) -> tuple[float, int]:
    """Best seconds of ``runs`` calls, and the rows the function reports."""
    times, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = function()
        times.append(time.perf_counter() - started)
    return min(times), rows


def compare(
    name: str, goal: float, runs: int, vecron: Callable[[], int], bare: Callable[[], int]
) -> None:
    """Run the two in turn, ``runs`` times each (so that a busy moment of the machine
    hits both), and report the best time of each."""
    ours: list[tuple[float, int]] = []
    theirs: list[tuple[float, int]] = []
    for _ in range(runs):
        ours.append(best(1, vecron))
        theirs.append(best(1, bare))
    report(name, goal, min(ours), min(theirs))


def report(name: str, goal: float, vecron: tuple[float, int], bare: tuple[float, int]) -> None:
    ours, theirs = vecron[1] / vecron[0], bare[1] / bare[0]
    ratio = ours / theirs
    mark = "ok" if ratio >= goal else "below goal"
    print(
        f"{name:<34} vecron {ours:>12,.0f} rows/s   bare {theirs:>12,.0f} rows/s   "
        f"ratio {ratio:4.2f} (goal >= {goal}: {mark})"
    )


# --- part 1: vecron's parts against the bare libraries -------------------------------


def csv_parts(work: Path, rows: int, runs: int) -> None:
    source = work / "in.csv"
    make_csv(source, rows)
    text = pa.string()

    def bare_read() -> int:
        reader = pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(COLUMNS, text), strings_can_be_null=False
            ),
        )
        return sum(batch.num_rows for batch in reader)

    def vecron_read() -> int:
        chunks = read_csv(
            source,
            label="in.csv",
            delimiter=",",
            encoding="utf-8",
            has_header=True,
            skip_rows=False,
            skips=Skips(),
        )
        return sum(chunk.batch.num_rows for chunk in chunks)

    compare("CSV read", 0.8, runs, vecron_read, bare_read)

    batches = [
        c.batch
        for c in read_csv(
            source,
            label="in.csv",
            delimiter=",",
            encoding="utf-8",
            has_header=True,
            skip_rows=False,
            skips=Skips(),
        )
    ]
    spec = FileReadConfig.model_validate(
        {
            "operation": "read",
            "format": "csv",
            "source_path": "x",
            "transformations": TRANSFORMATIONS,
        }
    )
    true_set = pa.array(["true", "t", "yes", "y", "1"])

    def bare_transform() -> int:
        kept = 0
        for batch in batches:
            amount = pc.cast(pc.utf8_trim_whitespace(batch.column("amount")), pa.decimal128(38, 2))
            issued = pc.cast(pc.utf8_trim_whitespace(batch.column("issued_on")), pa.date32())
            paid = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(batch.column("paid"))), true_set)
            mask = pc.and_(paid, pc.greater(amount, pa.scalar(100)))
            out = pa.RecordBatch.from_arrays(
                [batch.column("invoice_no"), batch.column("customer"), amount, issued],
                names=["invoice_no", "customer", "amount", "issued_on"],
            ).filter(mask)
            kept += out.num_rows
        return sum(b.num_rows for b in batches) + 0 * kept

    def vecron_transform() -> int:
        transformer = Transformer(
            spec.transformations, skip_rows=False, skips=Skips(), reference=lambda r: None
        )
        for batch in batches:
            transformer.apply(Chunk(batch=batch, file="in.csv"))
        return sum(b.num_rows for b in batches)

    compare("transform (3 conversions, filter)", 0.8, runs, vecron_transform, bare_transform)

    def bare_write() -> int:
        with pcsv.CSVWriter(work / "bare.csv", batches[0].schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return sum(b.num_rows for b in batches)

    def vecron_write() -> int:
        writer = CsvWriter(
            work / "vecron.csv",
            label="out.csv",
            delimiter=",",
            encoding="utf-8",
            has_header=True,
            skip_rows=False,
            skips=Skips(),
        )
        for batch in batches:
            writer.write(Chunk(batch=batch, file="in.csv"))
        writer.close()
        return sum(b.num_rows for b in batches)

    compare("CSV write", 0.8, runs, vecron_write, bare_write)


def xlsx_parts(work: Path, rows: int, runs: int) -> None:
    source = work / "x.csv"
    make_csv(source, rows)
    batches = [
        c.batch
        for c in read_csv(
            source,
            label="x.csv",
            delimiter=",",
            encoding="utf-8",
            has_header=True,
            skip_rows=False,
            skips=Skips(),
        )
    ]
    transformer = Transformer(
        FileReadConfig.model_validate(
            {
                "operation": "read",
                "format": "csv",
                "source_path": "x",
                "transformations": TRANSFORMATIONS[:3],
            }
        ).transformations,
        skip_rows=False,
        skips=Skips(),
        reference=lambda r: None,
    )
    typed = [transformer.apply(Chunk(batch=b, file="x.csv")).batch for b in batches]
    path = work / "x.xlsx"

    def bare_write() -> int:
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("Data")
        sheet.append(typed[0].schema.names)
        for batch in typed:
            columns = [column.to_pylist() for column in batch.columns]
            for row in zip(*columns, strict=True):
                sheet.append(row)
        book.save(work / "bare.xlsx")
        return sum(b.num_rows for b in typed)

    def vecron_write() -> int:
        writer = ExcelWriter(
            path, label="x.xlsx", sheet_name="Data", has_header=True, skip_rows=False, skips=Skips()
        )
        for batch in typed:
            writer.write(Chunk(batch=batch, file="x"))
        writer.close()
        return sum(b.num_rows for b in typed)

    compare("XLSX write (openpyxl write-only)", 0.9, runs, vecron_write, bare_write)

    def bare_openpyxl() -> int:
        book = openpyxl.load_workbook(work / "bare.xlsx", read_only=True, data_only=True)
        count = sum(1 for _ in book["Data"].iter_rows(values_only=True)) - 1
        book.close()
        return count

    def bare_calamine() -> int:
        book = CalamineWorkbook.from_path(str(work / "bare.xlsx"))
        count = sum(1 for _ in book.get_sheet_by_name("Data").iter_rows()) - 1
        book.close()
        return count

    def vecron_reader(in_memory: bool) -> Callable[[], int]:
        def run() -> int:
            chunks = read_excel(
                work / "bare.xlsx",
                label="x.xlsx",
                sheet="Data",
                has_header=True,
                skip_rows=False,
                skips=Skips(),
                in_memory=in_memory,
            )
            return sum(chunk.batch.num_rows for chunk in chunks)

        return run

    compare("XLSX read, openpyxl read-only", 0.9, runs, vecron_reader(False), bare_openpyxl)
    compare("XLSX read, python-calamine", 0.9, runs, vecron_reader(True), bare_calamine)


# --- part 2: whole steps on big files, each in a child process -----------------------


async def _child_steps(source: str, fmt: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vecron-bench-store-") as store:
        objects = LocalObjectStore(Path(store))
        await objects.put_file("files/big.csv", Path(source))
        started = time.perf_counter()
        parsed = await read(objects, "files/big.csv")
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        written = await write(objects, parsed, f"big.{fmt}", format=fmt)
        write_seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": written["row_count"],
        "read_seconds": read_seconds,
        "write_seconds": write_seconds,
        "peak_rss_mb": peak,
    }


def big_files(work: Path, big_gb: float) -> None:
    sizes = [s for s in (0.125, 0.5, 1.0, 2.0) if s <= big_gb] or [big_gb]
    if big_gb not in sizes:
        sizes.append(big_gb)
    for gb in sizes:
        source = work / f"big-{gb}.csv"
        rows = make_csv_of_size(source, int(gb * 1024**3))
        megabytes = source.stat().st_size / 1024**2
        for fmt in ("parquet", "csv"):
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(source), fmt],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            total = figures["read_seconds"] + figures["write_seconds"]
            print(
                f"CSV {megabytes:>6,.0f} MB -> {fmt:<7} {rows:>11,} rows in {total:6.1f} s "
                f"(read step {figures['read_seconds']:5.1f} s, write step "
                f"{figures['write_seconds']:5.1f} s; {rows / total:>10,.0f} rows/s)   "
                f"peak RSS {figures['peak_rss_mb']:5.0f} MB (goal < 300 MB)"
            )
        source.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows for part 1")
    parser.add_argument("--xlsx-rows", type=int, default=50_000, help="XLSX rows for part 1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-gb", type=float, default=1.0, help="largest CSV of part 2, in GiB")
    parser.add_argument("--skip-big", action="store_true", help="part 1 only")
    parser.add_argument("--big-only", action="store_true", help="part 2 only")
    parser.add_argument("--child", nargs=2, metavar=("CSV", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child_steps(*args.child))))
        return
    with tempfile.TemporaryDirectory(prefix="vecron-files-bench-") as folder:
        work = Path(folder)
        if not args.big_only:
            print(
                f"part 1: {args.rows:,} CSV rows, {args.xlsx_rows:,} XLSX rows, best of {args.runs}"
            )
            csv_parts(work, args.rows, args.runs)
            xlsx_parts(work, args.xlsx_rows, args.runs)
        if not args.skip_big:
            print("part 2: whole steps (read step, then write step) through a local object store")
            big_files(work, args.big_gb)


if __name__ == "__main__":
    main()
