"""Database URLs and engines: which drivers, and how their connections are set up.

PostgreSQL goes through psycopg 3, SQLite through the standard library's sqlite3, both
synchronous: :class:`~vecron.backends.database.sql.SqlDatabase` runs each transaction
whole on a thread of its own. SQLite runs in WAL
mode with a busy timeout and foreign keys on. Its transactions start with
``BEGIN IMMEDIATE`` when they may write, so that two writers queue on the busy timeout
instead of failing on a stale snapshot, and with a deferred ``BEGIN`` on an engine view
made with :data:`READ_ONLY`, so that readers never wait for writers.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from vecron.errors import ConfigurationError

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another one before giving up."""

_BEGIN_OPTION = "vecron_sqlite_begin"
READ_ONLY: dict[str, Any] = {_BEGIN_OPTION: "DEFERRED"}
"""Options for a read-only view of an engine: ``engine.execution_options(**READ_ONLY)``."""


def normalize_database_url(url: str | URL) -> URL:
    """The driver-qualified form of a PostgreSQL or SQLite URL.

    ``postgres://``, ``postgresql://`` and ``postgresql+psycopg://`` become
    ``postgresql+psycopg://``; ``sqlite:///path`` becomes ``sqlite+pysqlite:///path``
    (``sqlite+aiosqlite://``, the spelling of earlier versions, is accepted).
    In-memory SQLite is refused: every connection would see its own empty database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"VECRON_DATABASE_URL is not a database URL: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    shown = parsed.render_as_string(hide_password=True)
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "psycopg", "psycopg_async"):
            raise ConfigurationError(f"{shown}: use the psycopg driver (postgresql+psycopg://)")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite", "aiosqlite"):
            raise ConfigurationError(f"{shown}: use the sqlite3 driver (sqlite:///path)")
        database = parsed.database or ""
        if database in ("", ":memory:") or "memory" in str(parsed.query.get("mode", "")):
            raise ConfigurationError(
                f"{shown}: an in-memory SQLite database cannot be shared; use a file"
            )
        return parsed.set(drivername="sqlite+pysqlite")
    raise ConfigurationError(
        f"{shown}: unsupported database; use postgresql://… or sqlite:///path/to/file.db"
    )


def create_database_engine(url: str | URL, *, pool_size: int = 8) -> Engine:
    """An engine for ``url`` with vecron's connection settings (see the module docstring).

    For a SQLite file, its folder is created when missing.
    """
    parsed = normalize_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # The store's threads share the pool, so a connection may not stay on the thread
        # that opened it; SQLite serialises writers itself (BEGIN IMMEDIATE).
        engine = create_engine(
            parsed, pool_size=pool_size, connect_args={"check_same_thread": False}
        )
        prepare_engine(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = 10
    return create_engine(parsed, pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args)


def prepare_engine(engine: Engine) -> None:
    """Install vecron's SQLite connection settings on an engine (idempotent; no-op on
    PostgreSQL). Call it before the engine opens its first connection."""
    if engine.dialect.name != "sqlite":
        return
    if not event.contains(engine, "connect", _sqlite_on_connect):
        event.listen(engine, "connect", _sqlite_on_connect)
    if not event.contains(engine, "begin", _sqlite_on_begin):
        event.listen(engine, "begin", _sqlite_on_begin)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN (before DML only) would make reads and DDL run
    # outside the transaction; _sqlite_on_begin emits BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file, so this only does work once per database. But the
    # switch needs a lock the busy handler does not wait for: when two processes open a
    # new database at once, the loser retries. It sleeps on the event loop's thread,
    # which is acceptable for the few milliseconds of a first start.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() > deadline:
            return  # stay in rollback-journal mode: slower, still correct
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
    connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")
