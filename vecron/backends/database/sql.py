"""The database role over SQLAlchemy 2: PostgreSQL via psycopg 3, SQLite via sqlite3.

Engines and their connection settings come from :mod:`.engine`. Every method is one
transaction, run whole on a worker thread: the method builds a plain function of a
connection, and :meth:`SqlDatabase._run` runs it inside ``engine.begin()`` on a thread
of the store's own pool and awaits the result. One thread hop per transaction, not one
per statement, is what makes this layer cheap (an async driver pays a loop round trip
for every execute, fetch and commit: about ten times the CPU of the statement itself).

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
    ColumnElement,
    Row,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
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
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    MASK,
    SYNC_COUNTS,
    ExecutionRecord,
    ExecutionStatus,
    FireResult,
    JobRecord,
    RepoFileRecord,
    ScheduledFire,
    SyncRecord,
    SyncStatus,
    TriggerSource,
    VariableRecord,
    VariableSource,
    new_id,
    strip_credentials,
    utc_now,
)
from vecron.backends.database.engine import READ_ONLY, create_database_engine, prepare_engine
from vecron.backends.database.tables import (
    UtcDateTime,
    job_executions,
    jobs,
    repo_files,
    sync_runs,
    variables,
)
from vecron.crypto import SecretBox
from vecron.errors import (
    AlreadyExists,
    BackendUnavailable,
    ConfigurationError,
    ExecutionNotFound,
    JobNotFound,
    RunInFlight,
    SyncNotFound,
)

# One fixed 64-bit key: every vecron process migrating one database takes the same lock.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"vecron:migrate").digest()[:8], "big", signed=True
)

_JOB_COLUMNS = frozenset(f.name for f in dataclasses.fields(JobRecord))
_EXECUTION_COLUMNS = frozenset(f.name for f in dataclasses.fields(ExecutionRecord))


# -- values ---------------------------------------------------------------------------


def _canonical_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _require_id(value: str, what: str) -> str:
    canonical = _canonical_id(value)
    if canonical is None:
        raise ValueError(f"{what} {value!r} is not a UUID")
    return canonical


def _jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO text, enums as values and tuples as lists."""
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _seconds(lease_seconds: float) -> timedelta:
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
    return timedelta(seconds=lease_seconds)


def _unknown(kind: str, names: Collection[str]) -> TypeError:
    return TypeError(f"{kind} got unknown or read-only column(s): {', '.join(sorted(names))}")


def _violated(exc: IntegrityError, table: Table, columns: Collection[str]) -> str | None:
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


class SqlDatabase:
    """The :class:`~vecron.backends.database.base.Database` over a SQLAlchemy ``Engine``.

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

    # -- jobs -----------------------------------------------------------------------------

    def _job(self, row: Row[Any]) -> JobRecord:
        values = dict(row._mapping)
        if values["webhook_secret"] is not None:
            values["webhook_secret"] = self._box.decrypt(values["webhook_secret"])
        return JobRecord(**values)

    def _encrypt(self, value: str | None) -> str | None:
        return None if value is None else self._box.encrypt(value)

    _JOB_UNIQUE = {"name": "job name", "webhook_id": "webhook id", "job_id": "job id"}

    async def list_jobs(self, *, include_disabled: bool = True) -> list[JobRecord]:
        query = select(jobs).order_by(jobs.c.name)
        if not include_disabled:
            query = query.where(jobs.c.enabled.is_(True))
        return [self._job(row) for row in await self._rows(query)]

    async def _one_job(self, column: str, value: str, missing: str) -> JobRecord:
        query = self._statement(
            ("job by", column), lambda: select(jobs).where(jobs.c[column] == bindparam("key"))
        )
        row = await self._run(
            lambda connection: connection.execute(query, {"key": value}).first(), write=False
        )
        if row is None:
            raise JobNotFound(missing)
        return self._job(row)

    async def get_job(self, name: str) -> JobRecord:
        return await self._one_job("name", name, name)

    async def get_job_by_id(self, job_id: str) -> JobRecord:
        canonical = _canonical_id(job_id)
        if canonical is None:
            raise JobNotFound(job_id)
        return await self._one_job("job_id", canonical, job_id)

    async def get_job_by_webhook(self, webhook_id: str) -> JobRecord:
        return await self._one_job("webhook_id", webhook_id, webhook_id)

    async def insert_job(self, job: JobRecord) -> None:
        await self.insert_jobs([job])

    async def insert_jobs(self, records: Sequence[JobRecord]) -> None:
        rows = []
        for job in records:
            values = {name: getattr(job, name) for name in _JOB_COLUMNS}
            values["job_id"] = _require_id(job.job_id, "job_id")
            values["webhook_secret"] = self._encrypt(job.webhook_secret)
            rows.append(values)
        if not rows:
            return
        try:
            await self._run(lambda connection: connection.execute(jobs.insert(), rows))
        except IntegrityError as exc:
            if len(rows) == 1:
                raise self._job_conflict(exc, rows[0]) from None
            raise await self._bulk_conflict(exc, rows) from None

    async def _bulk_conflict(self, exc: IntegrityError, rows: list[dict[str, Any]]) -> Exception:
        column = _violated(exc, jobs, list(self._JOB_UNIQUE))
        if column is None:
            return exc
        wanted = [row[column] for row in rows if row[column] is not None]
        found = await self._rows(select(jobs.c[column]).where(jobs.c[column].in_(wanted)))
        taken = {str(value) for (value,) in found}
        seen: set[str] = set()
        for value in map(str, wanted):
            if value in taken or value in seen:
                return AlreadyExists(self._JOB_UNIQUE[column], value)
            seen.add(value)
        return exc

    def _job_conflict(self, exc: IntegrityError, values: Mapping[str, Any]) -> Exception:
        column = _violated(exc, jobs, [c for c in self._JOB_UNIQUE if c in values])
        if column is None:
            return exc
        return AlreadyExists(self._JOB_UNIQUE[column], str(values[column]))

    async def update_job(self, job_id: str, /, **changes: Any) -> JobRecord:
        statement = self._job_update(job_id, changes)
        try:
            row = await self._write_first(statement)
        except IntegrityError as exc:
            raise self._job_conflict(exc, changes) from None
        if row is None:
            raise JobNotFound(job_id)
        return self._job(row)

    async def update_jobs(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        # One executemany per set of changed columns: a sync updates thousands of rows.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        ids: dict[str, str] = {}
        for job_id, change in changes.items():
            unknown = set(change) - (_JOB_COLUMNS - {"job_id", "created_at"})
            if unknown:
                raise _unknown("update_jobs()", unknown)
            canonical = _canonical_id(job_id)
            if canonical is None:
                raise JobNotFound(job_id)
            ids[canonical] = job_id
            values = dict(change)
            if "webhook_secret" in values:
                values["webhook_secret"] = self._encrypt(values["webhook_secret"])
            values.setdefault("updated_at", self._now())
            params = {f"v_{key}": value for key, value in values.items()}
            params["k_job_id"] = canonical
            groups.setdefault(tuple(sorted(values)), []).append(params)
        if not groups:
            return

        def work(connection: Connection) -> None:
            found = connection.execute(select(jobs.c.job_id).where(jobs.c.job_id.in_(list(ids))))
            missing = set(ids) - {str(row[0]) for row in found}
            if missing:
                raise JobNotFound(ids[min(missing)])
            for columns, rows in groups.items():
                connection.execute(self._bulk_job_update(columns), rows)

        try:
            await self._run(work)
        except IntegrityError as exc:
            raise self._job_conflict(exc, {}) from None

    @staticmethod
    def _bulk_job_update(columns: Sequence[str]) -> Any:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
        if "content_hash" in columns and "definition_version" not in columns:
            values["definition_version"] = case(
                (
                    and_(
                        bindparam("v_content_hash").is_not(None),
                        jobs.c.content_hash.is_distinct_from(bindparam("v_content_hash")),
                    ),
                    jobs.c.definition_version + 1,
                ),
                else_=jobs.c.definition_version,
            )
        return update(jobs).where(jobs.c.job_id == bindparam("k_job_id")).values(**values)

    def _job_update(self, job_id: str, changes: Mapping[str, Any]) -> Any:
        unknown = set(changes) - (_JOB_COLUMNS - {"job_id", "created_at"})
        if unknown:
            raise _unknown("update_job()", unknown)
        canonical = _canonical_id(job_id)
        if canonical is None:
            raise JobNotFound(job_id)
        values: dict[str, Any] = dict(changes)
        if "webhook_secret" in values:
            values["webhook_secret"] = self._encrypt(values["webhook_secret"])
        values.setdefault("updated_at", self._now())
        new_hash = changes.get("content_hash")
        if new_hash is not None and "definition_version" not in changes:
            values["definition_version"] = case(
                (
                    jobs.c.content_hash.is_distinct_from(new_hash),
                    jobs.c.definition_version + 1,
                ),
                else_=jobs.c.definition_version,
            )
        return update(jobs).where(jobs.c.job_id == canonical).values(**values).returning(*jobs.c)

    async def delete_job(self, job_id: str) -> None:
        canonical = _canonical_id(job_id)
        if canonical is None:
            return
        statement = delete(jobs).where(jobs.c.job_id == canonical)
        await self._run(lambda connection: connection.execute(statement))

    # -- variables ------------------------------------------------------------------------

    async def set_variable(
        self, name: str, value: str, *, secret: bool, source: VariableSource | str
    ) -> None:
        row = {
            "name": name,
            "value": self._box.encrypt(value) if secret else value,
            "secret": secret,
            "source": VariableSource(source).value,
            "updated_at": self._now(),
        }
        statement = self._insert(variables).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[variables.c.name],
            set_={k: v for k, v in row.items() if k != "name"},
        )
        await self._run(lambda connection: connection.execute(statement))

    async def get_variables(self, *, decrypt: bool = False) -> dict[str, VariableRecord]:
        rows = await self._rows(select(variables).order_by(variables.c.name))
        result: dict[str, VariableRecord] = {}
        for row in rows:
            value = row.value
            if row.secret:
                value = self._box.decrypt(value) if decrypt else MASK
            result[row.name] = VariableRecord(
                name=row.name,
                value=value,
                secret=row.secret,
                source=row.source,
                updated_at=row.updated_at,
            )
        return result

    async def delete_variable(self, name: str) -> bool:
        statement = delete(variables).where(variables.c.name == name)
        return await self._write_first(statement.returning(variables.c.name)) is not None

    async def replace_repo_variables(self, values: Mapping[str, str]) -> None:
        now = self._now()

        def work(connection: Connection) -> None:
            query = select(variables.c.name, variables.c.value, variables.c.source)
            current = {row.name: row for row in connection.execute(query).all()}
            stale = [
                name
                for name, row in current.items()
                if row.source == VariableSource.REPO and name not in values
            ]
            if stale:
                connection.execute(delete(variables).where(variables.c.name.in_(stale)))
            for name, value in values.items():
                row = current.get(name)
                if row is not None and (row.source == VariableSource.CLI or row.value == value):
                    continue
                fields = {"value": value, "secret": False, "source": "repo", "updated_at": now}
                statement = self._insert(variables).values(name=name, **fields)
                connection.execute(
                    statement.on_conflict_do_update(index_elements=[variables.c.name], set_=fields)
                )

        await self._run(work)

    # -- repository files -----------------------------------------------------------------

    async def list_repo_files(self) -> dict[str, RepoFileRecord]:
        rows = await self._rows(select(repo_files).order_by(repo_files.c.path))
        return {row.path: RepoFileRecord(**row._mapping) for row in rows}

    async def put_repo_file(self, path: str, content_hash: str, size: int) -> None:
        fields = {"content_hash": content_hash, "size": size, "updated_at": self._now()}
        statement = self._insert(repo_files).values(path=path, **fields)
        statement = statement.on_conflict_do_update(index_elements=[repo_files.c.path], set_=fields)
        await self._run(lambda connection: connection.execute(statement))

    async def delete_repo_file(self, path: str) -> None:
        statement = delete(repo_files).where(repo_files.c.path == path)
        await self._run(lambda connection: connection.execute(statement))

    # -- sync runs ------------------------------------------------------------------------

    async def start_sync(self, *, source: str, ref: str | None) -> str:
        sync_id = new_id()
        row: dict[str, Any] = {
            "sync_id": sync_id,
            "started_at": self._now(),
            "source": strip_credentials(source),
            "ref": ref,
            "status": SyncStatus.RUNNING.value,
            "errors": [],
        }
        row.update(dict.fromkeys(SYNC_COUNTS, 0))
        statement = sync_runs.insert().values(**row)
        await self._run(lambda connection: connection.execute(statement))
        return sync_id

    async def finish_sync(
        self,
        sync_id: str,
        *,
        status: SyncStatus | str,
        commit: str | None,
        counts: Mapping[str, int],
        errors: Sequence[Mapping[str, Any]],
        message: str | None,
    ) -> None:
        unknown = set(counts) - set(SYNC_COUNTS)
        if unknown:
            raise ValueError(f"unknown sync counts: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            "status": SyncStatus(status).value,
            "finished_at": self._now(),
            "commit": commit,
            "errors": _jsonable(list(errors)),
            "message": message,
        }
        values.update({name: int(counts.get(name, 0)) for name in SYNC_COUNTS})
        canonical = _canonical_id(sync_id)
        row = None
        if canonical is not None:
            statement = update(sync_runs).where(sync_runs.c.sync_id == canonical).values(**values)
            row = await self._write_first(statement.returning(sync_runs.c.sync_id))
        if row is None:
            raise SyncNotFound(sync_id)

    async def last_sync(self) -> SyncRecord | None:
        syncs = await self.list_syncs(limit=1)
        return syncs[0] if syncs else None

    async def list_syncs(self, limit: int = 20) -> list[SyncRecord]:
        query = select(sync_runs).order_by(sync_runs.c.started_at.desc()).limit(limit)
        return [SyncRecord(**row._mapping) for row in await self._rows(query)]

    # -- executions -----------------------------------------------------------------------

    @staticmethod
    def _execution(row: Row[Any]) -> ExecutionRecord:
        return ExecutionRecord(**row._mapping)

    @staticmethod
    def _execution_values(changes: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(changes)
        for name in ("trigger_data", "step_statuses"):
            if name in values:
                values[name] = _jsonable(values[name])
        if "status" in values:
            values["status"] = ExecutionStatus(values["status"]).value
        if "trigger_source" in values:
            values["trigger_source"] = TriggerSource(values["trigger_source"]).value
        return values

    async def create_execution(
        self, record: ExecutionRecord, *, exclusive: bool = False
    ) -> ExecutionRecord:
        execution_id = _require_id(record.execution_id, "execution_id")
        job_id = _require_id(record.job_id, "job_id")

        def work(connection: Connection) -> ExecutionRecord:
            if exclusive:
                self._refuse_if_active(connection, job_id, record)
            return self._insert_execution(connection, record)

        try:
            return await self._run(work)
        except IntegrityError as exc:
            if _violated(exc, job_executions, ["execution_id"]):
                raise AlreadyExists("execution id", execution_id) from None
            raise

    def _insert_execution(self, connection: Connection, record: ExecutionRecord) -> ExecutionRecord:
        """Insert ``record`` (or return the execution that already has its key)."""
        values = self._execution_values(
            {name: getattr(record, name) for name in _EXECUTION_COLUMNS}
        )
        values["execution_id"] = _require_id(record.execution_id, "execution_id")
        values["job_id"] = _require_id(record.job_id, "job_id")
        keyed = record.idempotency_key is not None
        statement = self._statement(
            ("insert execution", keyed), lambda: self._execution_insert(keyed)
        )
        row = connection.execute(statement, values).first()
        if row is None:  # the key is taken: the first execution wins
            row = connection.execute(
                self._statement("execution by key", self._execution_by_key),
                {"job_id": values["job_id"], "key": record.idempotency_key},
            ).one()
        return self._execution(row)

    def _execution_insert(self, keyed: bool) -> Any:
        statement = self._insert(job_executions)
        if keyed:
            statement = statement.on_conflict_do_nothing(
                index_elements=[job_executions.c.job_id, job_executions.c.idempotency_key]
            )
        return statement.returning(*job_executions.c)

    @staticmethod
    def _execution_by_key(columns: Any = None) -> Any:
        return select(*(columns or job_executions.c)).where(
            job_executions.c.job_id == bindparam("job_id"),
            job_executions.c.idempotency_key == bindparam("key"),
        )

    def _refuse_if_active(
        self, connection: Connection, job_id: str, record: ExecutionRecord
    ) -> None:
        # Serialise the check and the insert per job: PostgreSQL locks the job's row;
        # SQLite's write transactions (BEGIN IMMEDIATE) are serial already.
        if self._dialect == "postgresql":
            lock = self._statement(
                "lock job",
                lambda: (
                    select(jobs.c.job_id)
                    .where(jobs.c.job_id == bindparam("job_id"))
                    .with_for_update()
                ),
            )
            connection.execute(lock, {"job_id": job_id})
        if record.idempotency_key is not None:
            same = self._statement(
                "execution id by key",
                lambda: self._execution_by_key([job_executions.c.execution_id]),
            )
            if connection.execute(same, {"job_id": job_id, "key": record.idempotency_key}).first():
                return  # a redelivery: the insert returns the first execution
        active = self._statement(
            "active execution",
            lambda: (
                select(job_executions.c.execution_id)
                .where(
                    job_executions.c.job_id == bindparam("job_id"),
                    job_executions.c.status.in_([s.value for s in ACTIVE_STATUSES]),
                )
                .limit(1)
            ),
        )
        if connection.execute(active, {"job_id": job_id}).first() is not None:
            raise RunInFlight(record.job_name)

    @staticmethod
    def _claimable() -> ColumnElement[bool]:
        """Whether the execution ``:k_execution_id`` may be claimed at ``:now``."""
        return and_(
            job_executions.c.execution_id == bindparam("k_execution_id"),
            or_(
                job_executions.c.status == ExecutionStatus.QUEUED.value,
                and_(
                    job_executions.c.status == ExecutionStatus.RUNNING.value,
                    or_(
                        job_executions.c.leased_until.is_(None),
                        job_executions.c.leased_until <= bindparam("now", type_=UtcDateTime()),
                    ),
                ),
            ),
        )

    def _claim_statements(self) -> tuple[Any, Any]:
        now = bindparam("now", type_=UtcDateTime())
        lock = (
            select(job_executions.c.execution_id)
            .where(self._claimable())
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(job_executions)
            .where(self._claimable())
            .values(
                status=ExecutionStatus.RUNNING.value,
                worker_id=bindparam("v_worker_id"),
                leased_until=bindparam("v_leased_until", type_=UtcDateTime()),
                started_at=func.coalesce(job_executions.c.started_at, now),
            )
            .returning(*job_executions.c)
        )
        return lock, claim

    def _require_execution(self, connection: Connection, execution_id: str) -> None:
        query = self._statement(
            "execution exists",
            lambda: select(job_executions.c.execution_id).where(
                job_executions.c.execution_id == bindparam("execution_id")
            ),
        )
        if connection.execute(query, {"execution_id": execution_id}).first() is None:
            raise ExecutionNotFound(execution_id)

    async def claim_execution(
        self, execution_id: str, *, worker_id: str, lease_seconds: float
    ) -> ExecutionRecord | None:
        lease = _seconds(lease_seconds)
        canonical = _canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        now = self._now()
        lock, claim = self._statement("claim", self._claim_statements)
        params = {
            "k_execution_id": canonical,
            "now": now,
            "v_worker_id": worker_id,
            "v_leased_until": now + lease,
        }

        def work(connection: Connection) -> Row[Any] | None:
            # PostgreSQL: a competing claimer skips the locked row instead of queueing on
            # it. SQLite has no row locks and needs none (BEGIN IMMEDIATE serialises).
            if self._dialect == "postgresql" and connection.execute(lock, params).first() is None:
                self._require_execution(connection, canonical)
                return None
            row = connection.execute(claim, params).first()
            if row is None:
                self._require_execution(connection, canonical)
            return row

        row = await self._run(work)
        return None if row is None else self._execution(row)

    async def renew_lease(self, execution_id: str, *, worker_id: str, lease_seconds: float) -> bool:
        lease = _seconds(lease_seconds)
        canonical = _canonical_id(execution_id)
        if canonical is None:
            return False
        statement = (
            update(job_executions)
            .where(
                job_executions.c.execution_id == canonical,
                job_executions.c.worker_id == worker_id,
                job_executions.c.status == ExecutionStatus.RUNNING.value,
            )
            .values(leased_until=self._now() + lease)
            .returning(job_executions.c.execution_id)
        )
        return await self._write_first(statement) is not None

    async def finish_execution(
        self,
        execution_id: str,
        *,
        worker_id: str | None,
        status: ExecutionStatus | str,
        error: str | None,
        step_statuses: Sequence[Mapping[str, Any]] | None = None,
        context_path: str | None = None,
    ) -> bool:
        final = ExecutionStatus(status)
        if final not in FINAL_STATUSES:
            raise ValueError(f"{final.value!r} is not a final status")
        canonical = _canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        values: dict[str, Any] = {
            "status": final.value,
            "error": error,
            "finished_at": self._now(),
            "leased_until": None,
        }
        if step_statuses is not None:
            values["step_statuses"] = _jsonable(list(step_statuses))
        if context_path is not None:
            values["minio_context_path"] = context_path
        guarded = worker_id is not None
        statement = self._execution_update(tuple(sorted(values)), guarded=guarded)
        params = {f"v_{name}": value for name, value in values.items()}
        params["k_execution_id"] = canonical
        if guarded:
            params["k_worker_id"] = worker_id

        def work(connection: Connection) -> bool:
            if connection.execute(statement, params).first() is not None:
                return True
            self._require_execution(connection, canonical)
            return False

        return await self._run(work)

    async def update_execution(self, execution_id: str, /, **changes: Any) -> None:
        unknown = set(changes) - (_EXECUTION_COLUMNS - {"execution_id"})
        if unknown:
            raise _unknown("update_execution()", unknown)
        canonical = _canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        if not changes:
            await self.get_execution(canonical)
            return
        values = self._execution_values(changes)
        statement = self._execution_update(tuple(sorted(values)), guarded=False)
        params = {f"v_{name}": value for name, value in values.items()}
        params["k_execution_id"] = canonical
        row = await self._run(lambda connection: connection.execute(statement, params).first())
        if row is None:
            raise ExecutionNotFound(execution_id)

    def _execution_update(self, columns: tuple[str, ...], *, guarded: bool) -> Any:
        """``UPDATE`` of ``columns`` (bound as ``:v_<name>``) of execution
        ``:k_execution_id``; ``guarded``: only while ``:k_worker_id`` runs it."""

        def build() -> Any:
            conditions = [job_executions.c.execution_id == bindparam("k_execution_id")]
            if guarded:
                conditions += [
                    job_executions.c.worker_id == bindparam("k_worker_id"),
                    job_executions.c.status == ExecutionStatus.RUNNING.value,
                ]
            return (
                update(job_executions)
                .where(*conditions)
                .values({name: bindparam(f"v_{name}") for name in columns})
                .returning(job_executions.c.execution_id)
            )

        return self._statement(("update execution", columns, guarded), build)

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        canonical = _canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        query = self._statement(
            "execution",
            lambda: select(job_executions).where(
                job_executions.c.execution_id == bindparam("execution_id")
            ),
        )
        row = await self._run(
            lambda connection: connection.execute(query, {"execution_id": canonical}).first(),
            write=False,
        )
        if row is None:
            raise ExecutionNotFound(execution_id)
        return self._execution(row)

    async def list_executions(
        self,
        *,
        job_name: str | None = None,
        status: ExecutionStatus | str | Collection[ExecutionStatus | str] | None = None,
        trigger_source: TriggerSource | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionRecord]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        table = job_executions
        query = select(table).order_by(table.c.queued_at.desc(), table.c.execution_id.desc())
        if job_name is not None:
            query = query.where(table.c.job_name == job_name)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            query = query.where(table.c.status.in_([ExecutionStatus(s).value for s in wanted]))
        if trigger_source is not None:
            query = query.where(table.c.trigger_source == TriggerSource(trigger_source).value)
        if since is not None:
            query = query.where(table.c.queued_at >= since)
        if until is not None:
            query = query.where(table.c.queued_at < until)
        rows = await self._rows(query.limit(limit).offset(offset))
        return [self._execution(row) for row in rows]

    async def due_jobs(self, now: datetime, *, limit: int = 500) -> list[JobRecord]:
        query = (
            select(jobs)
            .where(jobs.c.enabled.is_(True), jobs.c.next_run_at <= now)
            .order_by(jobs.c.next_run_at)
            .limit(limit)
        )
        return [self._job(row) for row in await self._rows(query)]

    async def next_due_at(self) -> datetime | None:
        query = select(func.min(jobs.c.next_run_at)).where(jobs.c.enabled.is_(True))
        row = await self._first(query)
        value: datetime | None = None if row is None else row[0]
        return value

    async def advance_schedule(
        self, job_id: str, *, expected: datetime | None, next_run_at: datetime | None
    ) -> bool:
        canonical = _canonical_id(job_id)
        if canonical is None:
            return False
        condition = (
            jobs.c.next_run_at.is_(None) if expected is None else jobs.c.next_run_at == expected
        )
        statement = (
            update(jobs)
            .where(jobs.c.job_id == canonical, condition)
            .values(next_run_at=next_run_at, updated_at=self._now())
        )
        moved = await self._run(lambda connection: connection.execute(statement).rowcount)
        return bool(moved == 1)

    async def fire_schedules(self, fires: Sequence[ScheduledFire]) -> list[FireResult]:
        if not fires:
            return []
        now = self._now()
        advance = self._statement(
            "advance schedule",
            lambda: (
                update(jobs)
                .where(
                    jobs.c.job_id == bindparam("k_job_id"),
                    jobs.c.next_run_at == bindparam("k_expected", type_=UtcDateTime()),
                )
                .values(
                    next_run_at=bindparam("v_next_run_at"), updated_at=bindparam("v_updated_at")
                )
            ),
        )

        def work(connection: Connection) -> list[FireResult]:
            results: list[FireResult] = []
            for fire in fires:
                canonical = _canonical_id(fire.job_id)
                if canonical is None:
                    results.append(FireResult(advanced=False))
                    continue
                moved = connection.execute(
                    advance,
                    {
                        "k_job_id": canonical,
                        "k_expected": fire.expected,
                        "v_next_run_at": fire.next_run_at,
                        "v_updated_at": now,
                    },
                )
                if moved.rowcount != 1:
                    results.append(FireResult(advanced=False))
                    continue
                record = fire.execution
                if record is None:
                    results.append(FireResult(advanced=True))
                    continue
                if fire.exclusive:
                    try:
                        self._refuse_if_active(connection, canonical, record)
                    except RunInFlight:
                        record = dataclasses.replace(
                            record,
                            status=ExecutionStatus.SKIPPED,
                            finished_at=now,
                            error=fire.refusal,
                        )
                stored = self._insert_execution(connection, record)
                results.append(FireResult(advanced=True, execution=stored))
            return results

        return await self._run(work)

    async def jobs_awaiting_delay(self) -> list[JobRecord]:
        query = select(jobs).where(
            jobs.c.enabled.is_(True),
            jobs.c.schedule_type == "fixed_delay",
            jobs.c.next_run_at.is_(None),
        )
        return [self._job(row) for row in await self._rows(query)]

    async def last_finished_execution(self, job_id: str) -> ExecutionRecord | None:
        canonical = _canonical_id(job_id)
        if canonical is None:
            return None
        query = (
            select(job_executions)
            .where(job_executions.c.job_id == canonical, job_executions.c.finished_at.is_not(None))
            .order_by(job_executions.c.finished_at.desc())
            .limit(1)
        )
        row = await self._first(query)
        return None if row is None else self._execution(row)

    async def running_executions(self, job_id: str) -> int:
        canonical = _canonical_id(job_id)
        if canonical is None:
            return 0
        query = select(func.count()).where(
            job_executions.c.job_id == canonical,
            job_executions.c.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
        row = await self._first(query)
        return 0 if row is None else int(row[0])
