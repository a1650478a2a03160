"""Fixtures for the database conformance suite: one migrated database per backend.

``database_template`` (module scope, parametrized over ``sqlite`` and ``postgresql``)
migrates once: a SQLite file that every test copies, or a throwaway PostgreSQL
database (``vecron_t_<random>``, dropped at the end) that every test truncates.
``db`` hands a test a :class:`Harness` on a fresh, empty, migrated database.

Engines are bound to an event loop, so every :meth:`Harness.run` opens its own
:class:`SqlDatabase` inside ``asyncio.run`` and closes it before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from tests.support import require
from vecron.backends.database import SqlDatabase
from vecron.backends.database.tables import metadata
from vecron.crypto import SecretBox

T = TypeVar("T")

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USERS = ("postgres", "root")
TABLES = tuple(table.name for table in metadata.sorted_tables)


@dataclass
class FakeClock:
    """An aware UTC clock that moves only when told to."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def pg_admin() -> psycopg.Connection[Any] | None:
    """An autocommit connection to the ``postgres`` database, or ``None`` when no
    server answers on 127.0.0.1:5432."""
    for user in PG_USERS:
        with contextlib.suppress(psycopg.OperationalError):
            return psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                user=user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=3,
            )
    return None


@contextlib.contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for the duration of the block; yields its URL."""
    admin = pg_admin()
    require(admin is not None, f"PostgreSQL on {PG_HOST}:{PG_PORT}")
    assert admin is not None
    name = f"vecron_t_{secrets.token_hex(6)}"
    user = admin.info.user
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Harness:
    """One empty, migrated database of one backend, for one test."""

    backend: str
    url: str
    box: SecretBox
    clock: FakeClock
    sqlite_template: Path | None = None

    def database(self, *, box: SecretBox | None = None, real_clock: bool = False) -> SqlDatabase:
        """A store on this database; open it inside the running event loop."""
        if real_clock:
            return SqlDatabase(self.url, secret_box=box or self.box)
        return SqlDatabase(self.url, secret_box=box or self.box, clock=self.clock)

    def run(
        self,
        body: Callable[[SqlDatabase], Awaitable[T]],
        *,
        box: SecretBox | None = None,
        real_clock: bool = False,
    ) -> T:
        """Run ``body(store)`` in a new event loop, closing the store afterwards."""

        async def main() -> T:
            store = self.database(box=box, real_clock=real_clock)
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())

    def raw(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one SQL statement, run directly with the driver (``?`` placeholders)."""
        if self.backend == "sqlite":
            with contextlib.closing(sqlite3.connect(self._sqlite_path())) as connection:
                rows = connection.execute(sql, params).fetchall()
                connection.commit()
                return rows
        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def reset(self) -> None:
        """Empty every table (hypothesis examples share one test's database)."""
        if self.backend == "sqlite":
            assert self.sqlite_template is not None
            path = Path(self._sqlite_path())
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(self.sqlite_template, path)
        else:
            # DELETE, not TRUNCATE: on a few rows it is much faster (no new files to sync).
            with psycopg.connect(self.url) as connection:
                for table in TABLES:
                    connection.execute(f"DELETE FROM {table}")

    def _sqlite_path(self) -> str:
        return self.url.removeprefix("sqlite:///")


@dataclass(frozen=True)
class Template:
    backend: str
    url: str  # PostgreSQL: the database; SQLite: the migrated file to copy


async def _migrate(url: str) -> None:
    store = SqlDatabase(url, secret_box=SecretBox.generate())
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Template]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
        asyncio.run(_migrate(f"sqlite:///{path}"))
        # Fold the write-ahead log into the file, so that copying the file copies it all.
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        yield Template(backend="sqlite", url=str(path))
        return
    with throwaway_pg_database() as url:
        asyncio.run(_migrate(url))
        yield Template(backend="postgresql", url=url)


@pytest.fixture
def db(database_template: Template, tmp_path: Path) -> Harness:
    """A fresh, empty, migrated database of the backend under test."""
    box = SecretBox.from_secret("conformance-suite")
    if database_template.backend == "sqlite":
        harness = Harness(
            backend="sqlite",
            url=f"sqlite:///{tmp_path / 'vecron.db'}",
            box=box,
            clock=FakeClock(),
            sqlite_template=Path(database_template.url),
        )
    else:
        harness = Harness(
            backend="postgresql", url=database_template.url, box=box, clock=FakeClock()
        )
    harness.reset()
    return harness
