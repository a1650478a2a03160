"""Helpers shared by the tests."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest
import redis


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop, fail in CI: a missing service must never pass silently there."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def redis_key_prefix(url: str, base: str) -> Iterator[str]:
    """A Redis key prefix of the test's own under ``base``; its keys are deleted after."""
    prefix = f"{base}test-{secrets.token_hex(6)}:"
    yield prefix
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
