"""The SQL store's schedules: due jobs, and fires written in as few statements as can be."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection

from vecron.backends.database.base import (
    ACTIVE_STATUSES,
    ExecutionRecord,
    ExecutionStatus,
    FireResult,
    JobRecord,
    ScheduledFire,
)
from vecron.backends.database.sqlcore import (
    canonical_id,
)
from vecron.backends.database.sqlexecutions import ExecutionTables
from vecron.backends.database.tables import (
    UtcDateTime,
    job_executions,
    jobs,
)
from vecron.errors import (
    RunInFlight,
)


class ScheduleTables(ExecutionTables):
    """The schedule columns of jobs and the executions their fires create."""

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
        canonical = canonical_id(job_id)
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
            batched = self._fire_together(connection, fires, advance, now)
            if batched is not None:
                return batched
            return [self._fire_one(connection, fire, advance, now) for fire in fires]

        return await self._run(work)

    def _fire_together(
        self, connection: Connection, fires: Sequence[ScheduledFire], advance: Any, now: datetime
    ) -> list[FireResult] | None:
        """Every fire in three statements (one UPDATE and one INSERT for all, one SELECT
        for the exclusive jobs' runs in flight), when every fire lands as planned: each
        schedule moves and each execution is new. Otherwise nothing of it stays and
        ``None`` sends the caller to :meth:`_fire_one`, fire by fire."""
        ids = [canonical_id(fire.job_id) for fire in fires]
        if None in ids or len(set(ids)) != len(ids) or not self._sane_multi_rowcount():
            return None
        try:
            with connection.begin_nested():
                moved = connection.execute(
                    advance,
                    [
                        {
                            "k_job_id": job_id,
                            "k_expected": fire.expected,
                            "v_next_run_at": fire.next_run_at,
                            "v_updated_at": now,
                        }
                        for job_id, fire in zip(ids, fires, strict=True)
                    ],
                )
                if moved.rowcount != len(fires):
                    raise _NotTogether
                busy = self._jobs_in_flight(
                    connection,
                    [i for i, f in zip(ids, fires, strict=True) if f.exclusive and f.execution],
                )
                records = [
                    None
                    if fire.execution is None
                    else (
                        dataclasses.replace(
                            fire.execution,
                            status=ExecutionStatus.SKIPPED,
                            finished_at=now,
                            error=fire.refusal,
                        )
                        if job_id in busy
                        else fire.execution
                    )
                    for job_id, fire in zip(ids, fires, strict=True)
                ]
                rows = [self._execution_row(record) for record in records if record is not None]
                if rows:
                    statement = self._statement("insert executions", self._executions_insert)
                    if connection.execute(statement, rows).rowcount != len(rows):
                        raise _NotTogether  # a key already taken: fire by fire
        except _NotTogether:
            return None
        return [FireResult(advanced=True, execution=record) for record in records]

    def _sane_multi_rowcount(self) -> bool:
        return bool(self._engine.dialect.supports_sane_multi_rowcount)

    def _executions_insert(self) -> Any:
        return self._insert(job_executions).on_conflict_do_nothing(
            index_elements=[job_executions.c.job_id, job_executions.c.idempotency_key]
        )

    def _jobs_in_flight(self, connection: Connection, job_ids: list[str | None]) -> set[str]:
        """Which of ``job_ids`` have a queued or running execution (locking their job
        rows on PostgreSQL, as :meth:`_refuse_if_active` does)."""
        if not job_ids:
            return set()
        if self._dialect == "postgresql":
            connection.execute(
                select(jobs.c.job_id).where(jobs.c.job_id.in_(job_ids)).with_for_update()
            )
        query = (
            select(job_executions.c.job_id)
            .where(
                job_executions.c.job_id.in_(job_ids),
                job_executions.c.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
            .distinct()
        )
        return {str(row[0]) for row in connection.execute(query)}

    def _fire_one(
        self, connection: Connection, fire: ScheduledFire, advance: Any, now: datetime
    ) -> FireResult:
        canonical = canonical_id(fire.job_id)
        if canonical is None:
            return FireResult(advanced=False)
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
            return FireResult(advanced=False)
        record = fire.execution
        if record is None:
            return FireResult(advanced=True)
        if fire.exclusive:
            try:
                self._refuse_if_active(connection, canonical, record)
            except RunInFlight:
                record = dataclasses.replace(
                    record, status=ExecutionStatus.SKIPPED, finished_at=now, error=fire.refusal
                )
        return FireResult(advanced=True, execution=self._insert_execution(connection, record))

    async def jobs_awaiting_delay(self) -> list[JobRecord]:
        query = select(jobs).where(
            jobs.c.enabled.is_(True),
            jobs.c.schedule_type == "fixed_delay",
            jobs.c.next_run_at.is_(None),
        )
        return [self._job(row) for row in await self._rows(query)]

    async def last_finished_execution(self, job_id: str) -> ExecutionRecord | None:
        canonical = canonical_id(job_id)
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
        canonical = canonical_id(job_id)
        if canonical is None:
            return 0
        query = select(func.count()).where(
            job_executions.c.job_id == canonical,
            job_executions.c.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
        row = await self._first(query)
        return 0 if row is None else int(row[0])


class _NotTogether(Exception):
    """A batch of fires did not land as planned: undo it, go fire by fire."""
