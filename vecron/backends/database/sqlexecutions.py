"""The SQL store's executions: creation, claims and leases, updates and history."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    IntegrityError,
)

from vecron.backends.database.base import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    ExecutionRecord,
    ExecutionStatus,
    TriggerSource,
)
from vecron.backends.database.sqlcore import (
    EXECUTION_COLUMNS,
    SqlCore,
    canonical_id,
    jsonable,
    lease_delta,
    require_id,
    unknown_columns,
    violated,
)
from vecron.backends.database.tables import (
    UtcDateTime,
    job_executions,
    jobs,
)
from vecron.errors import (
    AlreadyExists,
    ExecutionNotFound,
    RunInFlight,
)


class ExecutionTables(SqlCore):
    """Executions and the schedule columns of jobs that fire them."""

    # -- executions -----------------------------------------------------------------------

    @staticmethod
    def _execution(row: Row[Any]) -> ExecutionRecord:
        return ExecutionRecord(**row._mapping)

    @staticmethod
    def _execution_values(changes: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(changes)
        for name in ("trigger_data", "step_statuses"):
            if name in values:
                values[name] = jsonable(values[name])
        if "status" in values:
            values["status"] = ExecutionStatus(values["status"]).value
        if "trigger_source" in values:
            values["trigger_source"] = TriggerSource(values["trigger_source"]).value
        return values

    async def create_execution(
        self, record: ExecutionRecord, *, exclusive: bool = False
    ) -> ExecutionRecord:
        execution_id = require_id(record.execution_id, "execution_id")
        job_id = require_id(record.job_id, "job_id")

        def work(connection: Connection) -> ExecutionRecord:
            if exclusive:
                self._refuse_if_active(connection, job_id, record)
            return self._insert_execution(connection, record)

        try:
            return await self._run(work)
        except IntegrityError as exc:
            if violated(exc, job_executions, ["execution_id"]):
                raise AlreadyExists("execution id", execution_id) from None
            raise

    def _insert_execution(self, connection: Connection, record: ExecutionRecord) -> ExecutionRecord:
        """Insert ``record`` (or return the execution that already has its key)."""
        values = self._execution_row(record)
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
    def _claimable(*, of_attempt: bool = False) -> ColumnElement[bool]:
        """Whether the execution ``:k_execution_id`` may be claimed at ``:now`` (and,
        ``of_attempt``, only while its attempt is ``:k_attempt``)."""
        return and_(
            job_executions.c.execution_id == bindparam("k_execution_id"),
            *([job_executions.c.attempt == bindparam("k_attempt")] if of_attempt else []),
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

    def _claim_statements(self, *, of_attempt: bool) -> tuple[Any, Any]:
        now = bindparam("now", type_=UtcDateTime())
        lock = (
            select(job_executions.c.execution_id)
            .where(self._claimable(of_attempt=of_attempt))
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(job_executions)
            .where(self._claimable(of_attempt=of_attempt))
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
        self,
        execution_id: str,
        *,
        worker_id: str,
        lease_seconds: float,
        attempt: int | None = None,
    ) -> ExecutionRecord | None:
        lease = lease_delta(lease_seconds)
        canonical = canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        now = self._now()
        of_attempt = attempt is not None
        lock, claim = self._statement(
            ("claim", of_attempt), lambda: self._claim_statements(of_attempt=of_attempt)
        )
        params: dict[str, Any] = {
            "k_execution_id": canonical,
            "now": now,
            "v_worker_id": worker_id,
            "v_leased_until": now + lease,
        }
        if of_attempt:
            params["k_attempt"] = attempt

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
        lease = lease_delta(lease_seconds)
        canonical = canonical_id(execution_id)
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
        canonical = canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        values: dict[str, Any] = {
            "status": final.value,
            "error": error,
            "finished_at": self._now(),
            "leased_until": None,
        }
        if step_statuses is not None:
            values["step_statuses"] = jsonable(list(step_statuses))
        if context_path is not None:
            values["minio_context_path"] = context_path
        guarded = worker_id is not None
        statement = self._execution_update(
            tuple(sorted(values)), guard="running" if guarded else None
        )
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

    async def update_execution(
        self, execution_id: str, /, *, claimed_by: str | None = None, **changes: Any
    ) -> bool:
        unknown = set(changes) - (EXECUTION_COLUMNS - {"execution_id"})
        if unknown:
            raise unknown_columns("update_execution()", unknown)
        canonical = canonical_id(execution_id)
        if canonical is None:
            raise ExecutionNotFound(execution_id)
        if not changes:
            current = await self.get_execution(canonical)
            return claimed_by is None or current.worker_id == claimed_by
        values = self._execution_values(changes)
        guarded = claimed_by is not None
        statement = self._execution_update(
            tuple(sorted(values)), guard="owner" if guarded else None
        )
        params = {f"v_{name}": value for name, value in values.items()}
        params["k_execution_id"] = canonical
        if guarded:
            params["k_worker_id"] = claimed_by

        def work(connection: Connection) -> bool:
            if connection.execute(statement, params).first() is not None:
                return True
            self._require_execution(connection, canonical)
            return False

        return await self._run(work)

    def _execution_update(
        self, columns: tuple[str, ...], *, guard: Literal["running", "owner"] | None
    ) -> Any:
        """``UPDATE`` of ``columns`` (bound as ``:v_<name>``) of execution
        ``:k_execution_id``. ``guard``: ``running``, only while ``:k_worker_id`` runs it;
        ``owner``, only while ``:k_worker_id`` was the last to claim it (finished by it
        or running under it: another worker's claim, or the dead letter's, ends that)."""

        def build() -> Any:
            conditions = [job_executions.c.execution_id == bindparam("k_execution_id")]
            if guard is not None:
                conditions.append(job_executions.c.worker_id == bindparam("k_worker_id"))
            if guard == "running":
                conditions.append(job_executions.c.status == ExecutionStatus.RUNNING.value)
            return (
                update(job_executions)
                .where(*conditions)
                .values({name: bindparam(f"v_{name}") for name in columns})
                .returning(job_executions.c.execution_id)
            )

        return self._statement(("update execution", columns, guard), build)

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        canonical = canonical_id(execution_id)
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

    def _execution_row(self, record: ExecutionRecord) -> dict[str, Any]:
        values = self._execution_values({name: getattr(record, name) for name in EXECUTION_COLUMNS})
        values["execution_id"] = require_id(record.execution_id, "execution_id")
        values["job_id"] = require_id(record.job_id, "job_id")
        return values
