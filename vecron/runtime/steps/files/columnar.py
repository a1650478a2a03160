"""Parquet files and Arrow IPC result files: both typed, both read batch by batch.

Parquet keeps every Arrow type. The writer collects batches into row groups of about
:data:`ROW_GROUP_BYTES` (so a file streamed in small batches still has large row groups)
and compresses with Snappy, which every Parquet reader supports.

A read step leaves its transformed rows as an Arrow IPC file (LZ4-compressed), the
*result* that later steps stream from: it keeps the types the transformations gave
(decimals, dates) and costs little to write and read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

from vecron.backends.objectstore.base import raise_if_cancelled
from vecron.errors import StepFailed
from vecron.runtime.steps.files.tables import ROWS_PER_CHUNK, Chunk, empty_batch

ROW_GROUP_BYTES = 32 * 1024 * 1024
"""Arrow bytes gathered before a Parquet row group is written."""


def read_parquet(
    path: Path, *, label: str, cancelled: threading.Event | None = None
) -> Iterator[Chunk]:
    """The rows of a Parquet file; row numbers count from 1 (Parquet has no header)."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise StepFailed(f"{label}: not a readable Parquet file ({exc})") from None
    yield from _batches(
        lambda: file.iter_batches(batch_size=ROWS_PER_CHUNK),
        file.schema_arrow,
        label=label,
        what="Parquet",
        cancelled=cancelled,
    )


def read_arrow(
    path: Path, *, label: str, cancelled: threading.Event | None = None
) -> Iterator[Chunk]:
    """The rows of an Arrow IPC file (a read step's result)."""
    try:
        reader = ipc.open_file(pa.OSFile(str(path)))
    except (pa.ArrowException, OSError) as exc:
        raise StepFailed(f"{label}: not a readable Arrow file ({exc})") from None
    count = reader.num_record_batches
    yield from _batches(
        lambda: (reader.get_batch(i) for i in range(count)),
        reader.schema,
        label=label,
        what="Arrow",
        cancelled=cancelled,
    )


def _batches(
    open_batches: Callable[[], Iterable[pa.RecordBatch]],
    schema: pa.Schema,
    *,
    label: str,
    what: str,
    cancelled: threading.Event | None,
) -> Iterator[Chunk]:
    first_row = 1
    empty = True
    try:
        for batch in open_batches():
            raise_if_cancelled(cancelled)
            empty = False
            yield Chunk(batch=batch, file=label, first_row=first_row)
            first_row += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise StepFailed(
            f"{label}: cannot read the {what} file after row {first_row - 1}: {exc}"
        ) from None
    if empty:
        yield Chunk(batch=empty_batch(schema), file=label)


class ParquetWriter:
    """Writes chunks to a Parquet file, in row groups of about :data:`ROW_GROUP_BYTES`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0
        self._schema: pa.Schema | None = None

    def write(self, chunk: Chunk) -> pa.RecordBatch:
        batch = chunk.batch
        if self._schema is None:
            self._schema = batch.schema
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()
        return batch

    def _flush(self) -> None:
        assert self._schema is not None
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, self._schema, compression="snappy")
        table = pa.Table.from_batches(self._pending, schema=self._schema)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        if self._schema is None:
            self._schema = pa.schema([])
        if self._pending or self._writer is None:
            self._flush()
        assert self._writer is not None
        self._writer.close()

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ArrowWriter:
    """Writes chunks to an Arrow IPC file (LZ4), a batch per chunk."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: ipc.RecordBatchFileWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, chunk: Chunk) -> pa.RecordBatch:
        batch = chunk.batch
        if self._writer is None:
            self._schema = batch.schema
            self._writer = ipc.new_file(
                str(self._path), batch.schema, options=ipc.IpcWriteOptions(compression="lz4")
            )
        if batch.num_rows:
            self._writer.write_batch(batch)
        return batch

    def close(self) -> None:
        if self._writer is None:
            self._writer = ipc.new_file(str(self._path), pa.schema([]))
        self._writer.close()

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
