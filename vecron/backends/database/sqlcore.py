"""The core of the SQL store: its engine, its threads and one transaction's run.

PostgreSQL goes through psycopg 3, SQLite through sqlite3. Every method of the store is
one transaction, run whole on a worker thread: the method builds a plain function of a
connection, and :meth:`SqlCore._run` runs it inside ``engine.begin()`` on a thread of
the store's own pool and awaits the result. One thread hop per transaction, not one per
statement, is what makes this layer cheap (an async driver pays a loop round trip for
every execute, fetch and commit: about ten times the CPU of the statement itself).

Writes run on the engine (``BEGIN IMMEDIATE`` on SQLite), reads on a read-only view of
it (a deferred ``BEGIN``). On SQLite every write of this process runs on one thread, so
writers never contend inside a process; readers have threads of their own (WAL lets
them read while a write is in progress). On PostgreSQL every thread can write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import uuid
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Row,
    Table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vecron.backends.database import migrations
from vecron.backends.database.base import (
    ExecutionRecord,
    JobRecord,
    utc_now,
)
from vecron.backends.database.engine import READ_ONLY, create_database_engine, prepare_engine
from vecron.crypto import SecretBox
from vecron.errors import (
    BackendUnavailable,
    ConfigurationError,
)

# One fixed 64-bit key: every vecron process migrating one database takes the same lock.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"vecron:migrate").digest()[:8], "big", signed=True
)

JOB_COLUMNS = frozenset(f.name for f in dataclasses.fields(JobRecord))
EXECUTION_COLUMNS = frozenset(f.name for f in dataclasses.fields(ExecutionRecord))


# -- values ---------------------------------------------------------------------------


def canonical_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def require_id(value: str, what: str) -> str:
    canonical = canonical_id(value)
    if canonical is None:
        raise ValueError(f"{what} {value!r} is not a UUID")
    return canonical


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO text, enums as values and tuples as lists."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def lease_delta(lease_seconds: float) -> timedelta:
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
    return timedelta(seconds=lease_seconds)


def unknown_columns(kind: str, names: Collection[str]) -> TypeError:
    return TypeError(f"{kind} got unknown or read-only column(s): {', '.join(sorted(names))}")


def violated(exc: IntegrityError, table: Table, columns: Collection[str]) -> str | None:
    """Which of ``columns`` (unique or primary key) a failed write collided on, if any."""
    message = str(exc.orig)
    primary = {column.name for column in table.primary_key.columns}
    for column in columns:
        names = [f"{table.name}.{column}", f"uq_{table.name}_{column}"]
        if column in primary:
            names.append(f"pk_{table.name}")
        if any(f'{name}"' in message or message.endswith(name) for name in names):
            return column
    return None


T = TypeVar("T")

SQLITE_READER_THREADS = 2
"""Reader threads of a SQLite store (its writes all run on one more)."""

POSTGRES_THREADS = 8
"""Threads (and pooled connections) of a PostgreSQL store."""


class SqlCore:
    """What every part of :class:`~vecron.backends.database.sql.SqlDatabase` shares: the
    engine, the threads that run its transactions, and the statements built once.

    Give it a URL (it then owns the engine and disposes it on :meth:`close`) or a ready
    engine (left open). ``clock`` is the source of "now" for leases and timestamps,
    aware UTC; tests pass one they control.
    """

    def __init__(
        self,
        engine: Engine | str | URL,
        *,
        secret_box: SecretBox,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if isinstance(engine, Engine):
            prepare_engine(engine)
            self._engine, self._owns_engine = engine, False
        else:
            self._engine, self._owns_engine = create_database_engine(engine), True
        self._reader = self._engine.execution_options(**READ_ONLY)
        self._box = secret_box
        self._clock = clock
        self._dialect = self._engine.dialect.name
        self._statements: dict[Hashable, Any] = {}
        if self._dialect == "sqlite":
            self._writes = ThreadPoolExecutor(1, thread_name_prefix="vecron-db-write")
            self._reads = ThreadPoolExecutor(
                SQLITE_READER_THREADS, thread_name_prefix="vecron-db-read"
            )
        else:
            self._writes = self._reads = ThreadPoolExecutor(
                POSTGRES_THREADS, thread_name_prefix="vecron-db"
            )

    @property
    def engine(self) -> Engine:
        return self._engine

    def describe(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"SqlDatabase({self.describe()!r})"

    async def close(self) -> None:
        def shut() -> None:
            self._writes.shutdown(wait=True)
            self._reads.shutdown(wait=True)
            if self._owns_engine:
                self._engine.dispose()

        await asyncio.to_thread(shut)

    async def _run(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        """``work(connection)`` in one transaction on a thread of this store.

        A caller cancelled while ``work`` runs does not stop it: the transaction
        finishes (commits or rolls back) on its thread, as it would after a lost reply.
        """
        loop = asyncio.get_running_loop()
        executor = self._writes if write else self._reads
        try:
            return await loop.run_in_executor(executor, self._transaction, work, write)
        except RuntimeError as exc:
            if "shutdown" in str(exc):
                raise BackendUnavailable(f"database {self.describe()}: store closed") from None
            raise

    def _transaction(self, work: Callable[[Connection], T], write: bool) -> T:
        engine = self._engine if write else self._reader
        try:
            with engine.begin() as connection:
                return work(connection)
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if self._dialect == "sqlite" and reason.startswith("no such"):
                raise  # a missing table: the schema, not the server
            raise BackendUnavailable(f"database {self.describe()}: {reason}") from exc
        except StatementError as exc:
            # A value our column types refused (a naive datetime): the caller's ValueError.
            if not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError):
                raise exc.orig from None
            raise
        except PoolTimeout as exc:
            raise BackendUnavailable(
                f"database {self.describe()}: no free connection in the pool"
            ) from exc

    async def _rows(self, query: Any) -> Sequence[Row[Any]]:
        """All rows of one read-only query."""
        return await self._run(lambda connection: connection.execute(query).all(), write=False)

    async def _first(self, query: Any) -> Row[Any] | None:
        """The first row of one read-only query."""
        return await self._run(lambda connection: connection.execute(query).first(), write=False)

    async def _write_first(self, statement: Any) -> Row[Any] | None:
        """The first returned row of one writing statement."""
        return await self._run(lambda connection: connection.execute(statement).first())

    def _statement(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The statement ``build()`` makes, built once per store and ``key``.

        Hot paths run statements whose values are all bind parameters, built once: a
        statement made anew each call costs more CPU (coercing every value and
        computing the cache key) than executing it does.
        """
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = build()
        return statement

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _now(self) -> datetime:
        return self._clock()

    # -- schema ---------------------------------------------------------------------------

    async def migrate(self) -> None:
        from alembic.util import CommandError

        def work(connection: Connection) -> None:
            # One transaction: SQLite's BEGIN IMMEDIATE and PostgreSQL's advisory lock
            # both make a second process wait, then find the schema at head.
            if self._dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            migrations.upgrade(connection)

        try:
            await self._run(work)
        except CommandError as exc:
            raise ConfigurationError(
                f"cannot migrate {self.describe()}: {exc} (is the database from a newer vecron?)"
            ) from exc

    def _job(self, row: Row[Any]) -> JobRecord:
        values = dict(row._mapping)
        if values["webhook_secret"] is not None:
            values["webhook_secret"] = self._box.decrypt(values["webhook_secret"])
        return JobRecord(**values)

    def _encrypt(self, value: str | None) -> str | None:
        return None if value is None else self._box.encrypt(value)
