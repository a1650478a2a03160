"""What the listing commands print: aligned tables and UTC times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def when(moment: datetime | None) -> str:
    """``moment`` in UTC to the second, or ``-`` when there is none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def print_table(rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` (a header first) in columns two spaces apart."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
