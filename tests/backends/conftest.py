"""Fixtures for the backend conformance suites.

``s3_server`` and ``s3_url`` live in tests/conftest.py (every suite shares one
server). ``object_store`` hands a test an open store, parametrized
over ``local`` (its own temporary directory) and ``s3`` (its own key prefix).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vecron.backends.objectstore import ObjectStore, open_object_store


@pytest.fixture(params=["local", "s3"])
def object_store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "local":
        return (tmp_path_factory.mktemp("objects") / "store").as_uri()
    url: str = request.getfixturevalue("s3_url")
    return url


@pytest.fixture
async def object_store(object_store_url: str) -> AsyncIterator[ObjectStore]:
    store = open_object_store(object_store_url)
    try:
        yield store
    finally:
        await store.close()
