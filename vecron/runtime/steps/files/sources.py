"""Where a file step's rows come from: object-store files, or rows in the Job Context.

``source_path`` (read) renders to an object path, or to an earlier step's file output:
``{{steps.download.output.files}}`` reads every file of an SFTP download in turn,
``{{steps.x.output}}`` reads that output's ``path``. ``data_source`` (write) renders to
rows (a list of objects, a database step's output), or to a file output: a read step's
output is read from its typed ``result`` file; any other output with a ``path`` or
``files`` is read by its ``format``, or by the file name's extension (``.csv``,
``.tsv``, ``.xlsx``, ``.xls``, ``.parquet``, ``.arrow``).
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from vecron.errors import StepFailed
from vecron.runtime.steps.files.columnar import read_arrow, read_parquet
from vecron.runtime.steps.files.csvfile import read_csv
from vecron.runtime.steps.files.excelread import read_excel
from vecron.runtime.steps.files.tables import ROWS_PER_CHUNK, Chunk, Skips, rows_table

_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSource:
    """One file to read: its object path, format and reading options."""

    path: str
    format: str
    delimiter: str = ","
    encoding: str = "utf-8"
    has_header: bool = True
    sheet: str | int | None = None

    @property
    def filename(self) -> str:
        return posixpath.basename(self.path)


def source_paths(value: Any, what: str) -> list[str]:
    """The object paths a rendered ``source_path`` names (see the module docstring)."""
    if isinstance(value, str):
        if not value.strip():
            raise StepFailed(f"{what} is empty")
        return [value]
    if isinstance(value, Mapping):
        if isinstance(value.get("files"), list) and "path" not in value:
            return source_paths(value["files"], what)
        if isinstance(value.get("path"), str):
            return [value["path"]]
    if isinstance(value, list) and value:
        return [path for item in value for path in source_paths(item, what)]
    raise StepFailed(
        f"{what} must be an object path or a file output (with a path), got {_kind(value)}"
    )


def data_source(value: Any) -> list[FileSource] | pa.Table:
    """The files or the rows a rendered ``data_source`` names."""
    if isinstance(value, list):
        if value and all(isinstance(item, str) for item in value):
            return [_by_extension(path) for path in value]
        return rows_table(value, columns=None, label="data_source")
    if isinstance(value, str):
        return [_by_extension(value)]
    if isinstance(value, Mapping):
        result = value.get("result")
        if isinstance(result, Mapping) and isinstance(result.get("path"), str):
            return [FileSource(path=result["path"], format="arrow")]
        if isinstance(value.get("rows"), list):
            columns = value.get("columns")
            names = [str(c) for c in columns] if isinstance(columns, list) else None
            return rows_table(value["rows"], columns=names, label="data_source")
        if isinstance(value.get("path"), str) or isinstance(value.get("files"), list):
            return [_described(value, path) for path in source_paths(value, "data_source")]
        if isinstance(value.get("data"), list):
            return rows_table(value["data"], columns=None, label="data_source")
    raise StepFailed(
        "data_source must be rows (a list of objects, or an output with rows) or a file "
        f"output, got {_kind(value)}"
    )


def _described(output: Mapping[str, Any], path: str) -> FileSource:
    fmt = output.get("format")
    if fmt not in ("csv", "excel", "parquet", "arrow"):
        return _by_extension(path)
    delimiter, encoding = output.get("delimiter"), output.get("encoding")
    return FileSource(
        path=path,
        format=fmt,
        delimiter=delimiter if isinstance(delimiter, str) and len(delimiter) == 1 else ",",
        encoding=encoding if isinstance(encoding, str) else "utf-8",
    )


def _by_extension(path: str) -> FileSource:
    extension = posixpath.splitext(path)[1].lower()
    fmt = _EXTENSIONS.get(extension)
    if fmt is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise StepFailed(
            f"data_source {path!r}: cannot tell the file's format from its name "
            f"(known extensions: {known}); read it with a read step first"
        )
    return FileSource(path=path, format=fmt, delimiter="\t" if extension == ".tsv" else ",")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        keys = ", ".join(map(str, list(value)[:8]))
        return f"an object with keys {keys or '(none)'}"
    return type(value).__name__


def file_chunks(
    files: list[tuple[FileSource, Path]],
    *,
    skip_rows: bool,
    skips: Skips,
    cancelled: threading.Event | None,
) -> Iterator[Chunk]:
    """The rows of each local copy of ``files``, one file after the other."""
    for source, local in files:
        label = source.path
        if source.format == "csv":
            yield from read_csv(
                local,
                label=label,
                delimiter=source.delimiter,
                encoding=source.encoding,
                has_header=source.has_header,
                skip_rows=skip_rows,
                skips=skips,
                cancelled=cancelled,
            )
        elif source.format == "excel":
            yield from read_excel(
                local,
                label=label,
                sheet=source.sheet,
                has_header=source.has_header,
                skip_rows=skip_rows,
                skips=skips,
                cancelled=cancelled,
            )
        elif source.format == "parquet":
            yield from read_parquet(local, label=label, cancelled=cancelled)
        else:
            yield from read_arrow(local, label=label, cancelled=cancelled)


def table_chunks(table: pa.Table, label: str) -> Iterator[Chunk]:
    """Rows from the context, in chunks numbered from row 1."""
    batches = table.to_batches(max_chunksize=ROWS_PER_CHUNK) or [
        pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema)
    ]
    first_row = 1
    for batch in batches:
        yield Chunk(batch=batch, file=label, first_row=first_row)
        first_row += batch.num_rows
