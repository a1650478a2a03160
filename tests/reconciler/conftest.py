from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.backends.db_fixtures import TABLES, throwaway_pg_database
from vecron.settings import Settings
from vecron.stores import Stores, open_stores


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(params=["embedded", "distributed"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """Real stores: SQLite + a local directory, or PostgreSQL + S3 (SeaweedFS)."""
    home = tmp_path / "home"
    if request.param == "embedded":
        settings = Settings(home=home, secret_key="tests")
    else:
        database_url = request.getfixturevalue("postgres_url")
        s3_url = request.getfixturevalue("s3_url")
        settings = Settings(
            home=home,
            secret_key="tests",
            database_url=database_url,
            object_store_url=s3_url,
        )
    async with open_stores(settings) as opened:
        if request.param == "distributed":
            _empty(settings.effective_database_url)
        yield opened


def _empty(url: str) -> None:
    with psycopg.connect(url) as connection:
        for table in TABLES:
            connection.execute(f"DELETE FROM {table}")
