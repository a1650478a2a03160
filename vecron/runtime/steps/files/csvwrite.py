"""Writing CSV files, batch by batch, in any encoding (the rules: :mod:`.csvfile`)."""

from __future__ import annotations

import codecs
import functools
import unicodedata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from vecron.errors import StepFailed
from vecron.runtime.steps.files.csvfile import UTF8, check_delimiter, codec_name
from vecron.runtime.steps.files.printable import printable
from vecron.runtime.steps.files.tables import Chunk, Skips, show


def for_codec(text: str, codec: str) -> str:
    """cp1258 has few precomposed letters: ``ễ`` is written ``ê`` + a combining tilde."""
    if codec != "cp1258":
        return text
    return text.translate(_cp1258_table())


@functools.cache
def _cp1258_table() -> dict[int, str]:
    """Each letter cp1258 cannot hold whole, mapped to the shortest spelling it can."""
    table: dict[int, str] = {}
    for code in range(0xC0, 0x1F00):
        char = chr(code)
        if not _plain_unencodable(char):
            continue
        decomposed = unicodedata.normalize("NFD", char)
        base, marks = decomposed[0], list(decomposed[1:])
        for mark in list(marks):  # fold into the base every mark cp1258 has it with
            merged = unicodedata.normalize("NFC", base + mark)
            if len(merged) == 1 and not _plain_unencodable(merged):
                base = merged
                marks.remove(mark)
        spelled = base + "".join(marks)
        if spelled != char and not _plain_unencodable(spelled):
            table[code] = spelled
    return table


def _plain_unencodable(text: str) -> bool:
    try:
        text.encode("cp1258")
    except UnicodeEncodeError:
        return True
    return False


class CsvWriter:
    """Writes chunks to a CSV file at ``path``, batch by batch."""

    def __init__(
        self,
        path: Path,
        *,
        label: str,
        delimiter: str,
        encoding: str,
        has_header: bool,
        skip_rows: bool,
        skips: Skips,
    ) -> None:
        check_delimiter(delimiter, label)
        self._label = label
        self._codec = codec_name(encoding, label)
        self._has_header = has_header
        self._skip_rows, self._skips = skip_rows, skips
        self._options = pcsv.WriteOptions(
            include_header=has_header, delimiter=delimiter, quoting_style="needed"
        )
        self._file = pa.OSFile(str(path), "wb")
        if self._codec == "utf-8-sig":
            self._file.write(codecs.BOM_UTF8)
        self._writer: pcsv.CSVWriter | None = None
        self._started = False

    def write(self, chunk: Chunk) -> pa.RecordBatch:
        """Write the chunk's rows; returns those written (fewer when some were skipped)."""
        batch = printable(chunk.batch)
        if not batch.num_columns:
            return chunk.batch
        if self._codec in UTF8:
            if self._writer is None:
                self._writer = pcsv.CSVWriter(self._file, batch.schema, write_options=self._options)
            self._writer.write_batch(batch)
            return chunk.batch
        return self._write_encoded(chunk, batch)

    def _write_encoded(self, chunk: Chunk, batch: pa.RecordBatch) -> pa.RecordBatch:
        original = chunk.batch
        header = self._has_header and not self._started
        if header:
            for name in batch.schema.names:
                if _unencodable(name, self._codec):
                    raise StepFailed(
                        f"{self._label}: the column name {show(name)} cannot be written in "
                        f"{self._codec}"
                    )
        bad = _bad_rows(batch, self._codec)
        if bad:
            index, column, value = bad[0]
            if not self._skip_rows:
                raise StepFailed(
                    f"{chunk.where(index, column)}: {show(value)} cannot be written in "
                    f"{self._codec}; write utf-8, or set on_error: skip_row"
                )
            dropped: set[int] = set()
            for index, column, value in bad:
                if index not in dropped:
                    dropped.add(index)
                    message = f"{show(value)} is not {self._codec} text"
                    self._skips.add(chunk, index, column, message)
            keep = pa.array([i not in dropped for i in range(batch.num_rows)])
            batch, original = batch.filter(keep), original.filter(keep)
        buffer = pa.BufferOutputStream()
        options = pcsv.WriteOptions(
            include_header=header, delimiter=self._options.delimiter, quoting_style="needed"
        )
        pcsv.write_csv(batch, buffer, write_options=options)
        text = buffer.getvalue().to_pybytes().decode("utf-8")
        self._file.write(for_codec(text, self._codec).encode(self._codec))
        self._started = True
        return original

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._file.close()

    def discard(self) -> None:
        self.close()


def _unencodable(text: str, codec: str) -> bool:
    try:
        for_codec(text, codec).encode(codec)
    except UnicodeEncodeError:
        return True
    return False


def _bad_rows(batch: pa.RecordBatch, codec: str) -> list[tuple[int, str, str]]:
    """(index, column, value) of every text value ``codec`` cannot hold."""
    bad: list[tuple[int, str, str]] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        values: list[Any] = column.to_pylist()
        joined = "".join(v for v in values if v)
        if not _unencodable(joined, codec):
            continue
        bad.extend((i, name, v) for i, v in enumerate(values) if v and _unencodable(v, codec))
    bad.sort()
    return bad
