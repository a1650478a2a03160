"""CSV files: streaming reads through ``pyarrow.csv.open_csv``, streaming writes.

Reading. Every column is read as text, exactly as it stands in the file: ``00123``
stays ``00123`` and ``1250000.50`` is not rounded through a float; the step's
``type_conversion`` transformations give columns their types. Quoting follows RFC 4180
(``"`` quotes, ``""`` inside quotes is a quote, line breaks inside quotes are part of
the value); an empty field is the empty string; blank lines are ignored. UTF-8 files
are parsed by Arrow directly (a byte order mark is dropped); any other encoding is
decoded by Python's codec on the way in, and cp1258 text (Vietnamese, whose tone marks
are separate combining characters) is normalised to NFC, so ``Nguyễn`` read from cp1258
equals ``Nguyễn`` typed in a job file. Row numbers in messages count the header as row
1 and a record with line breaks inside quotes once, as a spreadsheet shows the file.
Arrow parses 1 MiB blocks; a single record longer than that is an error.

Writing. Column names first (unless ``has_header: false``), then one line per row,
``\\n``-terminated; text is always quoted, nulls are empty and unquoted, so an empty
string and a null stay apart. Decimals are written without trailing zeros
(``"1250000.5"``) and datetimes as ISO 8601 (``"2026-11-02T10:00:00"``, with a fraction
only when there is one), both quoted as the text they are made into; integers, floats,
dates (``2026-11-02``) and booleans (``true``/``false``) unquoted; lists and objects as
JSON text. ``utf-8-sig`` writes a byte order mark (what Excel needs to open UTF-8);
a value that the target encoding cannot hold fails, naming its row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pcsv

from vecron.backends.objectstore.base import raise_if_cancelled
from vecron.errors import StepFailed
from vecron.runtime.steps.files.tables import Chunk, Skips, empty_batch, show, unique_names

BLOCK_BYTES = 1024 * 1024
"""Bytes Arrow parses at a time: one record batch per block."""
_RAW_CHUNK = 1024 * 1024
UTF8 = frozenset({"utf-8", "utf-8-sig"})
_BAD_DELIMITERS = frozenset({'"', "\n", "\r"})


def codec_name(encoding: str, label: str) -> str:
    """The codec's canonical name (``utf-8``, ``cp1258``…); StepFailed for an unknown one."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise StepFailed(
            f"{label}: unknown encoding {encoding!r} (e.g. utf-8, utf-8-sig, cp1252, cp1258)"
        ) from None


def check_delimiter(delimiter: str, label: str) -> None:
    if delimiter in _BAD_DELIMITERS:
        raise StepFailed(f"{label}: {delimiter!r} cannot be a CSV delimiter")


def read_csv(
    path: Path,
    *,
    label: str,
    delimiter: str,
    encoding: str,
    has_header: bool,
    skip_rows: bool,
    skips: Skips,
    cancelled: threading.Event | None = None,
) -> Iterator[Chunk]:
    """The rows of the CSV file at ``path``, all columns as text, batch by batch.

    Under ``skip_rows`` a record whose field count differs from the header's is dropped
    and counted in ``skips``; otherwise it fails the step with its row number.
    """
    check_delimiter(delimiter, label)
    codec = codec_name(encoding, label)
    names = _probe(path, codec, delimiter, has_header, label)
    if names is None:  # an empty file: no columns, no rows
        yield Chunk(batch=pa.RecordBatch.from_pylist([]), file=label)
        return
    columns = unique_names(names) if has_header else [f"column_{i + 1}" for i in range(len(names))]
    malformed: list[tuple[int, int, str]] = []
    delivered = 0

    def invalid_row(row: Any) -> str:
        malformed.append((row.expected_columns, row.actual_columns, row.text))
        if not skip_rows:
            return "error"
        skips.add(
            None,
            None,
            None,
            f"a record after row {delivered + (1 if has_header else 0)} has "
            f"{row.actual_columns} fields where {row.expected_columns} were expected: "
            f"{show(row.text)}",
            file=label,
        )
        return "skip"

    source, transcoder = _open(path, codec, label)
    try:
        reader = pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(
                block_size=BLOCK_BYTES, autogenerate_column_names=not has_header
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=invalid_row
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(_arrow_names(names, has_header), pa.string()),
                strings_can_be_null=False,
            ),
        )
        first_row = 2 if has_header else 1
        empty = True
        while True:
            raise_if_cancelled(cancelled)
            skipped_before = skips.count
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            # Rows skipped while this block was parsed are counted before it: their exact
            # place inside the block is not known (Arrow does not say).
            first_row += skips.count - skipped_before if skip_rows else 0
            empty = False
            yield Chunk(
                batch=pa.RecordBatch.from_arrays(batch.columns, names=columns),
                file=label,
                first_row=first_row,
            )
            first_row += batch.num_rows
            delivered += batch.num_rows
        if empty:
            schema = pa.schema([(name, pa.string()) for name in columns])
            yield Chunk(batch=empty_batch(schema), file=label)
    except StepFailed:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        if transcoder is not None and transcoder.error is not None:
            raise transcoder.error from None
        raise _parse_failure(
            exc,
            path=path,
            codec=codec,
            delimiter=delimiter,
            label=label,
            malformed=malformed,
            delivered=delivered,
        ) from None
    finally:
        if hasattr(source, "close"):
            source.close()


def _arrow_names(names: list[str], has_header: bool) -> list[str]:
    return names if has_header else [f"f{i}" for i in range(len(names))]


def _open(path: Path, codec: str, label: str) -> tuple[Any, _Transcoder | None]:
    if codec in UTF8:
        return pa.OSFile(str(path), "rb"), None
    transcoder = _Transcoder(path.open("rb"), codec, label)
    return io.BufferedReader(transcoder, buffer_size=_RAW_CHUNK), transcoder


def _probe(
    path: Path, codec: str, delimiter: str, has_header: bool, label: str
) -> list[str] | None:
    """The header's names as written (or placeholders, one per field, without a
    header); None for a file with no records at all."""
    source, transcoder = _open(path, codec, label)
    try:
        reader = pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(
                block_size=BLOCK_BYTES,
                use_threads=False,
                autogenerate_column_names=not has_header,
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=_skip
            ),
        )
        return list(reader.schema.names)
    except (pa.ArrowException, OSError, ValueError) as exc:
        if transcoder is not None and transcoder.error is not None:
            raise transcoder.error from None
        if "Empty CSV file" in str(exc):
            return None
        raise _parse_failure(
            exc, path=path, codec=codec, delimiter=delimiter, label=label, malformed=[], delivered=0
        ) from None
    finally:
        source.close()


def _skip(_row: Any) -> str:
    return "skip"


def _parse_failure(
    exc: BaseException,
    *,
    path: Path,
    codec: str,
    delimiter: str,
    label: str,
    malformed: list[tuple[int, int, str]],
    delivered: int,
) -> StepFailed:
    text = str(exc)
    if malformed:
        expected, actual, record = malformed[-1]
        row = _find_record(path, codec, delimiter, expected)
        where = f"row {row}" if row is not None else f"a record after row {delivered}"
        return StepFailed(
            f"{label}, {where}: {actual} fields where the header has {expected}: {show(record)} "
            "(fix the file, or set on_error: skip_row to skip such rows)"
        )
    if "invalid UTF8" in text:
        line, offset = _first_bad_utf8(path)
        return StepFailed(
            f"{label}, line {line}: byte {offset} is not valid UTF-8; set encoding to the "
            "file's encoding (cp1252 for Western Windows files, cp1258 for Vietnamese ones)"
        )
    if "straddl" in text:
        return StepFailed(
            f"{label}: a record after row {delivered} is longer than "
            f"{BLOCK_BYTES // (1024 * 1024)} MiB (an unclosed quote?)"
        )
    return StepFailed(f"{label}: cannot parse the CSV after row {delivered}: {text}")


def _find_record(path: Path, codec: str, delimiter: str, expected: int) -> int | None:
    """The row number (header = 1, blank lines not counted) of the first record whose
    field count is not ``expected``: Arrow does not say where a bad record is."""
    with path.open(encoding=codec, errors="replace", newline="") as text:
        row = 0
        for record in csv.reader(text, delimiter=delimiter, strict=False):
            if not record:
                continue
            row += 1
            if len(record) != expected:
                return row
    return None


def _first_bad_utf8(path: Path) -> tuple[int, int]:
    """Line (from 1) and byte offset (from 0) of the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = lines = 0
    with path.open("rb") as file:
        while chunk := file.read(_RAW_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = max(exc.start - len(decoder.getstate()[0]), 0)
                return lines + chunk[:bad].count(b"\n") + 1, consumed + bad
            consumed += len(chunk)
            lines += chunk.count(b"\n")
    return lines + 1, consumed


class _Transcoder(io.RawIOBase):
    """A file in another encoding, read as UTF-8 (what Arrow parses).

    A byte the codec cannot decode stops the read with a StepFailed naming the line
    and the byte offset (kept in :attr:`error`, as Arrow re-raises it wrapped).
    """

    def __init__(self, raw: BinaryIO, codec: str, label: str) -> None:
        super().__init__()
        self._raw, self._codec, self._label = raw, codec, label
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self._nfc = codec == "cp1258"
        self._held = ""
        self._out = memoryview(b"")
        self._consumed = 0
        self._lines = 0
        self._eof = False
        self.error: StepFailed | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._eof:
            self._fill()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _fill(self) -> None:
        chunk = self._raw.read(_RAW_CHUNK)
        final = not chunk
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            line = self._lines + chunk[: max(exc.start, 0)].count(b"\n") + 1
            bad = chunk[exc.start : exc.end]
            self.error = StepFailed(
                f"{self._label}, line {line}: byte {bad.hex(' ')} at offset "
                f"{self._consumed + exc.start} is not {self._codec} text; "
                "is the file in another encoding?"
            )
            raise self.error from None
        self._consumed += len(chunk)
        self._lines += chunk.count(b"\n")
        if self._nfc:
            text = self._held + text
            cut = len(text) if final else _last_starter(text)
            self._held = text[cut:]
            text = unicodedata.normalize("NFC", text[:cut])
        self._out = memoryview(text.encode("utf-8"))
        self._eof = final


def _last_starter(text: str) -> int:
    """Where the last character that combining marks may follow starts; text before
    it can be normalised without the next chunk."""
    for index in range(len(text) - 1, -1, -1):
        if not unicodedata.combining(text[index]):
            return index
    return 0
