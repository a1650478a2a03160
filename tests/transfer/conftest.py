"""Fixtures of the transfer tests: the HTTP target jobs run against, and a job repository."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.http_target import HttpTarget, serve_http_target


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served:
        yield served
