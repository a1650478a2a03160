"""Headless Chromium for the end-to-end tests: Debian's ``/usr/bin/chromium`` driven by
the PyPI ``playwright`` package (its own browser download does not work here), and
the folder where the tests keep their screenshots."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from tests.support import require

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("VECRON_TEST_ARTIFACTS", REPO / ".artifacts")) / "dashboard"
"""Screenshots land here (``.artifacts/`` is ignored by Git); the tests print the path."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium to drive; skips (fails under CI) when it or playwright is missing."""
    found = os.environ.get("VECRON_TEST_CHROMIUM") or shutil.which("chromium")
    require(
        found is not None,
        "Debian's chromium is missing (scripts/test-services.sh installs it)",
    )
    require(
        importlib.util.find_spec("playwright") is not None,
        "the playwright package is missing (pip install -e '.[dev]')",
    )
    assert found is not None
    return found


def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
