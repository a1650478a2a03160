"""The two Excel engines behind :mod:`.excelread`, one interface: sheets as blocks of rows.

python-calamine parses a whole sheet into memory, about ten times faster than openpyxl;
openpyxl's read-only mode streams the sheet's XML. Either yields the rows of a sheet in
blocks of :data:`ROWS_PER_BATCH`, each row a sequence of Python values (calamine gives
``""`` for an empty cell, openpyxl None; the reader treats both as empty).
"""

from __future__ import annotations

import itertools
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from python_calamine import CalamineError

from vecron.errors import StepFailed

IN_MEMORY_MAX_BYTES = 16 * 1024 * 1024
"""Workbooks up to this size (compressed, as stored) are read by python-calamine."""
ROWS_PER_BATCH = 10_000
"""Rows per block, and per record batch of the reader."""
Row = list[Any] | tuple[Any, ...]
# Rows of a sheet: the first one's number, the rows, the column index of each row's first cell.
Block = tuple[int, list[Row], int]

# openpyxl warns about workbook features it drops (data validation, default styles):
# they are not the data, and a warning per file would flood the logs.
warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\..*)?$")

BROKEN: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    ElementTree.ParseError,
    SyntaxError,
    KeyError,
    EOFError,
    OSError,
    ValueError,
    TypeError,
    CalamineError,
)
"""What openpyxl and python-calamine raise for a corrupt or truncated workbook."""
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0"


class Book:
    sheet_names: list[str]

    def blocks(self, name: str) -> Iterator[Block]:
        """The sheet's rows, a batch at a time, from its first row that holds a cell."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CalamineBook(Book):
    def __init__(self, path: Path) -> None:
        from python_calamine import CalamineWorkbook

        with path.open("rb") as file:
            self._book = CalamineWorkbook.from_filelike(file)
        self.sheet_names = list(self._book.sheet_names)

    def blocks(self, name: str) -> Iterator[Block]:
        sheet = self._book.get_sheet_by_name(name)
        first_row, first_column = sheet.start or (0, 0)
        yield from _blocks(sheet.iter_rows(), first_row + 1, first_column)

    def close(self) -> None:
        self._book.close()


class _OpenpyxlBook(Book):
    def __init__(self, path: Path) -> None:
        import openpyxl

        self._book = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
        self.sheet_names = list(self._book.sheetnames)

    def blocks(self, name: str) -> Iterator[Block]:
        sheet = self._book[name]
        if not hasattr(sheet, "iter_rows"):  # a chart sheet
            return
        yield from _blocks(sheet.iter_rows(values_only=True), 1, 0)

    def close(self) -> None:
        self._book.close()


def _blocks(rows: Iterator[Row], first: int, offset: int) -> Iterator[Block]:
    while block := list[Row](itertools.islice(rows, ROWS_PER_BATCH)):
        yield first, block, offset
        first += len(block)


def open_book(path: Path, label: str, *, in_memory: bool | None = None) -> Book:
    """The workbook at ``path`` with the engine its size calls for (``in_memory``
    forces one: the benchmark compares them)."""
    with path.open("rb") as file:
        magic = file.read(4)
    if magic not in (_ZIP, _OLE):
        raise StepFailed(f"{label}: not an Excel workbook (an XLSX file is a ZIP archive)")
    if in_memory is None:
        in_memory = magic == _OLE or path.stat().st_size <= IN_MEMORY_MAX_BYTES
    try:
        return _CalamineBook(path) if in_memory else _OpenpyxlBook(path)
    except BROKEN as exc:
        raise StepFailed(
            f"{label}: not a readable Excel workbook, corrupt or truncated "
            f"({type(exc).__name__}: {exc})"
        ) from None
