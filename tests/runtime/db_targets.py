"""Target databases for the database step's tests.

``pg_target`` is a throwaway PostgreSQL database (``vecron_t_<random>``, dropped after
the test), ``mariadb_target`` a throwaway MariaDB database (utf8mb4, binary collation)
on 127.0.0.1:3306, ``sqlite_target`` an empty SQLite file under ``tmp_path``;
``db_target`` is parametrized over the three. A missing server skips on a laptop and
fails in CI (:func:`tests.support.require`).

Each yields a :class:`DbTarget`: the step's ``database_type`` and ``connection_string``,
and :meth:`DbTarget.sql` to set up and inspect the database with the driver directly.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tests.backends.db_fixtures import throwaway_pg_database
from tests.support import require

MARIADB_HOST = "127.0.0.1"
MARIADB_PORT = 3306
MARIADB_USER = "root"


@dataclass(frozen=True)
class DbTarget:
    """One empty target database. ``placeholder`` is the driver's positional marker."""

    name: str  # postgresql, mariadb, sqlite
    database_type: str
    url: str

    @property
    def placeholder(self) -> str:
        return "?" if self.name == "sqlite" else "%s"

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement directly with the driver (autocommit); its rows, if any."""
        if self.name == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(path)) as connection:
                rows = connection.execute(statement, params).fetchall()
                connection.commit()
                return rows
        if self.name == "postgresql":
            with psycopg.connect(self.url, autocommit=True) as pg:
                result = pg.execute(statement, params)
                return result.fetchall() if result.description else []
        maria = _mariadb_connect(self.url.rsplit("/", 1)[1])
        try:
            with maria.cursor() as cursor:
                cursor.execute(statement, params or None)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            maria.close()


def _mariadb_connect(database: str | None = None) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=MARIADB_HOST,
        port=MARIADB_PORT,
        user=MARIADB_USER,
        password="",
        database=database,
        autocommit=True,
        connect_timeout=3,
        charset="utf8mb4",
    )


@contextlib.contextmanager
def throwaway_mariadb_database() -> Iterator[str]:
    """A new, empty MariaDB database for the duration of the block; yields its URL."""
    admin = None
    with contextlib.suppress(pymysql.err.OperationalError):
        admin = _mariadb_connect()
    require(admin is not None, f"MariaDB on {MARIADB_HOST}:{MARIADB_PORT}")
    assert admin is not None
    name = f"vecron_t_{secrets.token_hex(6)}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        try:
            yield f"mysql+pymysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}"
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


@pytest.fixture
def pg_target() -> Iterator[DbTarget]:
    with throwaway_pg_database() as url:
        yield DbTarget(name="postgresql", database_type="postgresql", url=url)


@pytest.fixture
def mariadb_target() -> Iterator[DbTarget]:
    with throwaway_mariadb_database() as url:
        yield DbTarget(name="mariadb", database_type="mariadb", url=url)


@pytest.fixture
def sqlite_target(tmp_path: Path) -> DbTarget:
    path = tmp_path / "target.db"
    sqlite3.connect(path).close()
    return DbTarget(name="sqlite", database_type="sqlite", url=f"sqlite:///{path}")


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def db_target(request: pytest.FixtureRequest) -> DbTarget:
    fixture = {"postgresql": "pg_target", "mariadb": "mariadb_target", "sqlite": "sqlite_target"}
    target: DbTarget = request.getfixturevalue(fixture[request.param])
    return target


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word; yields the port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes handshakes; nobody ever answers
        yield listener.getsockname()[1]


def closed_port() -> int:
    """A local port with nothing listening on it (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
