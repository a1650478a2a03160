"""The ``file_processing`` executor: read, transform and write files, batch by batch.

A run copies its input files from the object store into a private temporary folder,
streams them through the transformations in a worker thread (one Arrow record batch
at a time, so memory stays flat however large the files are) and stores what it wrote
with :meth:`~vecron.backends.objectstore.base.ObjectStore.put_file`, atomically, at
``jobs/{job_id}/executions/{execution_id}/output/{filename}``. The folder is removed
afterwards; a cancelled run stops between batches and stores nothing.

Output, for both operations: ``path`` and ``files`` (``[{path, filename, size}]``: the
files read, or the file written), ``format``, ``row_count`` and ``columns`` (after the
transformations), ``data`` (the rows as JSON objects while there are at most
``max_inline_rows`` of them and they take at most :data:`MAX_INLINE_BYTES`, else null),
``skipped_rows`` and ``skipped`` (the first rows skipped under ``on_error: skip_row``,
with the reason). A read also leaves ``result``, ``{path, filename, size, format:
arrow}``: its transformed rows, typed, which a write step reads when its
``data_source`` is the read step's output. A CSV write adds ``delimiter`` and
``encoding``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pyarrow as pa
from pydantic import TypeAdapter

from vecron import paths
from vecron.backends.objectstore.base import check_path, raise_if_cancelled, run_cancellable
from vecron.errors import ObjectNotFound, SpecError, StepFailed
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.files.columnar import ArrowWriter, ParquetWriter
from vecron.runtime.steps.files.csvwrite import CsvWriter
from vecron.runtime.steps.files.excelwrite import ExcelWriter
from vecron.runtime.steps.files.sources import (
    FileSource,
    data_source,
    file_chunks,
    source_paths,
    table_chunks,
)
from vecron.runtime.steps.files.tables import Chunk, Skips, json_rows
from vecron.runtime.steps.files.transform import Transformer
from vecron.spec.models import FileConfig, FileReadConfig, FileWriteConfig

MAX_INLINE_BYTES = 4 * 1024 * 1024
"""``data`` is left out (null) when the rows' JSON would be larger than this."""
CONTENT_TYPES = {
    "csv": "text/csv",
    "excel": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.file",
}
_CONFIG: TypeAdapter[FileReadConfig | FileWriteConfig] = TypeAdapter(FileConfig)


class Writer(Protocol):
    def write(self, chunk: Chunk) -> pa.RecordBatch: ...

    def close(self) -> None: ...

    def discard(self) -> None:
        """Release open files after a failure; what was written is thrown away."""
        ...


@dataclass(slots=True)
class _Summary:
    rows: int = 0
    columns: list[str] | None = None
    inline: list[pa.RecordBatch] | None = None
    row_by_row: bool = False


class FileStepExecutor:
    """Runs ``file_processing`` steps; see the module docstring."""

    step_type: ClassVar[str] = "file_processing"

    async def run(self, config: Any, run: StepRun) -> dict[str, Any]:
        if not isinstance(config, FileReadConfig | FileWriteConfig):
            config = _CONFIG.validate_python(config)
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="vecron-files-"))
        started = time.monotonic()
        try:
            if isinstance(config, FileReadConfig):
                output = await self._read(config, run, work)
            else:
                output = await self._write(config, run, work)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        run.log.debug(
            "file_processing %s %s: %d rows, %d skipped in %.3f s",
            config.operation,
            config.format,
            output["row_count"],
            output["skipped_rows"],
            time.monotonic() - started,
        )
        return output

    async def close(self) -> None:
        return None

    async def _read(self, config: FileReadConfig, run: StepRun, work: Path) -> dict[str, Any]:
        rendered = run.values.render(config.source_path)
        sources = [
            FileSource(
                path=path,
                format=config.format,
                delimiter=config.delimiter,
                encoding=config.encoding,
                has_header=config.has_header,
                sheet=config.sheet,
            )
            for path in source_paths(rendered, "source_path")
        ]
        local = await _download(run, sources, work)
        result_name = f"{run.step_id}.arrow"
        result = work / result_name
        skips = Skips()
        skip_rows = config.on_error == "skip_row"
        transformer = Transformer(
            config.transformations, skip_rows=skip_rows, skips=skips, reference=run.values.reference
        )

        def pump(cancelled: threading.Event) -> _Summary:
            chunks = file_chunks(local, skip_rows=skip_rows, skips=skips, cancelled=cancelled)
            return _pump(
                chunks, transformer, ArrowWriter(result), config.max_inline_rows, cancelled
            )

        summary = await run_cancellable(pump)
        stored = await _store(run, result_name, result, "arrow")
        return {
            "path": sources[0].path,
            "files": [
                {"path": s.path, "filename": s.filename, "size": p.stat().st_size} for s, p in local
            ],
            "format": config.format,
            **_rows_output(summary, skips, config.max_inline_rows),
            "result": {**stored, "format": "arrow"},
        }

    async def _write(self, config: FileWriteConfig, run: StepRun, work: Path) -> dict[str, Any]:
        source = data_source(run.values.render(config.data_source))
        filename = run.values.render_text(config.destination_path)
        try:
            check_path(paths.output_path(run.job_id, run.execution_id, filename))
        except (SpecError, ValueError):
            raise StepFailed(
                f"destination_path {filename!r} must be a file name (no '/'): files are "
                "written to the execution's output folder"
            ) from None
        local = [] if isinstance(source, pa.Table) else await _download(run, source, work)
        target = work / "output"
        skips = Skips()
        skip_rows = config.on_error == "skip_row"
        transformer = Transformer(
            config.transformations, skip_rows=skip_rows, skips=skips, reference=run.values.reference
        )
        sheet_name = run.values.render_text(config.sheet_name) if config.sheet_name else "Sheet1"

        def pump(cancelled: threading.Event) -> _Summary:
            writer: Writer
            if config.format == "csv":
                writer = CsvWriter(
                    target,
                    label=filename,
                    delimiter=config.delimiter,
                    encoding=config.encoding,
                    has_header=config.has_header,
                    skip_rows=skip_rows,
                    skips=skips,
                )
            elif config.format == "excel":
                writer = ExcelWriter(
                    target,
                    label=filename,
                    sheet_name=sheet_name,
                    has_header=config.has_header,
                    skip_rows=skip_rows,
                    skips=skips,
                )
            else:
                writer = ParquetWriter(target)
            if isinstance(source, pa.Table):
                chunks = table_chunks(source, "data_source")
            else:
                chunks = file_chunks(local, skip_rows=skip_rows, skips=skips, cancelled=cancelled)
            return _pump(chunks, transformer, writer, config.max_inline_rows, cancelled)

        summary = await run_cancellable(pump)
        content_type = CONTENT_TYPES[config.format]
        if config.format == "csv":
            content_type += f"; charset={config.encoding}"
        stored = await _store(run, filename, target, config.format, content_type)
        output: dict[str, Any] = {
            "path": stored["path"],
            "files": [stored],
            "format": config.format,
            **_rows_output(summary, skips, config.max_inline_rows),
        }
        if config.format == "csv":
            output |= {"delimiter": config.delimiter, "encoding": config.encoding}
        return output


async def _download(
    run: StepRun, sources: list[FileSource], work: Path
) -> list[tuple[FileSource, Path]]:
    local: list[tuple[FileSource, Path]] = []
    for index, source in enumerate(sources):
        destination = work / f"source-{index}"
        try:
            await run.objects.get_file(source.path, destination)
        except ObjectNotFound:
            raise StepFailed(f"no file at {source.path!r} in the object store") from None
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        local.append((source, destination))
    return local


async def _store(
    run: StepRun, filename: str, local: Path, fmt: str, content_type: str | None = None
) -> dict[str, Any]:
    path = paths.output_path(run.job_id, run.execution_id, filename)
    await run.objects.put_file(path, local, content_type=content_type or CONTENT_TYPES[fmt])
    return {"path": path, "filename": filename, "size": local.stat().st_size}


def _pump(
    chunks: Iterator[Chunk],
    transformer: Transformer,
    writer: Writer,
    max_inline_rows: int,
    cancelled: threading.Event,
) -> _Summary:
    """Stream ``chunks`` through the transformations into ``writer`` (on a worker thread)."""
    try:
        return _pump_all(chunks, transformer, writer, max_inline_rows, cancelled)
    except BaseException:
        writer.discard()
        raise


def _pump_all(
    chunks: Iterator[Chunk],
    transformer: Transformer,
    writer: Writer,
    max_inline_rows: int,
    cancelled: threading.Event,
) -> _Summary:
    summary = _Summary(inline=[])
    schema: pa.Schema | None = None
    for read in chunks:
        raise_if_cancelled(cancelled)
        if schema is None:
            schema = read.batch.schema
        written = writer.write(transformer.apply(_align(read, schema)))
        summary.rows += written.num_rows
        if summary.columns is None:
            summary.columns = list(written.schema.names)
        if summary.inline is not None:
            if summary.rows > max_inline_rows:
                summary.inline = None
            elif written.num_rows:
                summary.inline.append(written)
    raise_if_cancelled(cancelled)
    writer.close()
    summary.row_by_row = transformer.row_by_row
    return summary


def _align(chunk: Chunk, schema: pa.Schema) -> Chunk:
    """A later file's rows in the first file's column order and types."""
    batch = chunk.batch
    if batch.schema.equals(schema):
        return chunk
    if sorted(batch.schema.names) != sorted(schema.names):
        raise StepFailed(
            f"{chunk.file}: its columns {batch.schema.names} differ from the first file's "
            f"{schema.names}"
        )
    try:
        columns = [
            batch.column(name).cast(field.type)
            for name, field in zip(schema.names, schema, strict=True)
        ]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise StepFailed(
            f"{chunk.file}: its column types differ from the first file's ({exc})"
        ) from None
    return chunk.replace(pa.RecordBatch.from_arrays(columns, schema=schema))


def _rows_output(summary: _Summary, skips: Skips, max_inline_rows: int) -> dict[str, Any]:
    data: list[dict[str, Any]] | None = None
    if summary.inline is not None and summary.rows <= max_inline_rows:
        data = json_rows(summary.inline)
        if len(json.dumps(data, ensure_ascii=False, default=str)) > MAX_INLINE_BYTES:
            data = None
    return {
        "row_count": summary.rows,
        "columns": summary.columns or [],
        "data": data,
        "skipped_rows": skips.count,
        "skipped": skips.examples,
    }
