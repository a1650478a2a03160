from __future__ import annotations

from vecron.cli import run

run()
