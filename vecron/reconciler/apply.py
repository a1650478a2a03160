"""Applying a plan: the stores are made to match the job repository.

Order makes it crash-safe. For each job the definition goes to the object store
first (the immutable version, then ``definition.json``), then the row; a new job's
row is inserted first with no content hash, so its id is known and a crash at any
point leaves a row whose hash differs from the file, which the next sync repairs. A
deleted job loses ``definition.json`` before its row, so a crash in between is
finished by the next sync. Versions and execution history stay.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vecron import paths
from vecron.backends.database import Database, JobRecord, SyncStatus
from vecron.backends.objectstore import ObjectStore
from vecron.errors import SyncRefused
from vecron.reconciler.plan import (
    REMOVED_REASON,
    DesiredJob,
    JobChange,
    Plan,
    canonical_json,
)
from vecron.reconciler.sources import Snapshot, SourceEntry
from vecron.spec import schedules
from vecron.spec.layout import FILES_DIR
from vecron.spec.models import Job

log = logging.getLogger("vecron.reconciler")
#: Object writes in flight at once: enough to hide S3 round trips and fsyncs.
WRITE_CONCURRENCY = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult:
    plan: Plan
    sync_id: str | None
    status: SyncStatus

    @property
    def wrote(self) -> bool:
        return self.sync_id is not None


async def apply_plan(
    plan: Plan,
    snapshot: Snapshot,
    *,
    database: Database,
    objects: ObjectStore,
    now: datetime | None = None,
) -> SyncResult:
    """Make the stores match ``plan``; records the sync run.

    A plan with nothing to change, for the commit the last sync already applied
    cleanly, writes nothing at all. A refused plan is recorded and raises
    :class:`SyncRefused`.
    """
    now = now or datetime.now(UTC)
    last = await database.last_sync()
    if (
        not plan.has_changes
        and not plan.invalid
        and plan.refusal is None
        and last is not None
        and last.status == SyncStatus.OK
        and last.commit == plan.commit
        and last.source == plan.source
    ):
        return SyncResult(plan=plan, sync_id=None, status=SyncStatus.OK)

    sync_id = await database.start_sync(source=plan.source, ref=None)
    if plan.refusal is not None:
        await database.finish_sync(
            sync_id,
            status=SyncStatus.REFUSED,
            commit=plan.commit,
            counts={},
            errors=plan.errors(),
            message=plan.refusal,
        )
        raise SyncRefused(plan.refusal)
    try:
        await _apply_files(plan, snapshot, database=database, objects=objects)
        if plan.variables is not None:
            await database.replace_repo_variables(plan.variables.values)
        await _apply_jobs(plan, sync_id, database=database, objects=objects, now=now)
    except Exception as exc:
        await database.finish_sync(
            sync_id,
            status=SyncStatus.FAILED,
            commit=plan.commit,
            counts=plan.counts,
            errors=plan.errors(),
            message=f"{type(exc).__name__}: {exc}",
        )
        raise
    status = SyncStatus.DEGRADED if plan.invalid else SyncStatus.OK
    message = None
    if plan.invalid:
        message = f"{len(plan.invalid)} invalid file(s) kept their jobs' last good definitions"
    await database.finish_sync(
        sync_id,
        status=status,
        commit=plan.commit,
        counts=plan.counts,
        errors=plan.errors(),
        message=message,
    )
    return SyncResult(plan=plan, sync_id=sync_id, status=status)


async def _bounded(jobs: list[Awaitable[None]]) -> None:
    """Run object writes ``WRITE_CONCURRENCY`` at a time; the first failure cancels the rest."""
    gate = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def one(job: Awaitable[None]) -> None:
        async with gate:
            await job

    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(one(job))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _apply_files(
    plan: Plan, snapshot: Snapshot, *, database: Database, objects: ObjectStore
) -> None:
    prefix = FILES_DIR + "/"
    if plan.file_puts:
        contents = snapshot.read([entry.path for entry in plan.file_puts])

        async def put(entry: SourceEntry) -> None:
            relative = entry.path.removeprefix(prefix)
            await objects.put(paths.repo_file_path(relative), contents[entry.path])
            await database.put_repo_file(relative, entry.blob_id, entry.size)

        await _bounded([put(entry) for entry in plan.file_puts])
    for relative in plan.file_deletes:
        await objects.delete(paths.repo_file_path(relative))
        await database.delete_repo_file(relative)


async def _apply_jobs(
    plan: Plan, sync_id: str, *, database: Database, objects: ObjectStore, now: datetime
) -> None:
    # Rows of new jobs first (no hash yet), then every object, then every row: a crash
    # anywhere leaves rows whose hash differs from their file, which the next sync redoes.
    writes = [c for c in plan.changes if c.action in ("create", "update")]
    records: dict[str, JobRecord] = {}
    new_rows = []
    for change in writes:
        assert change.desired is not None
        if change.live is None:
            record = JobRecord(
                name=change.name, enabled=False, source_path=change.path, created_at=now
            )
            new_rows.append(record)
        else:
            record = change.live
        records[change.name] = record
    await database.insert_jobs(new_rows)

    async def write(change: JobChange) -> None:
        want = change.desired
        assert want is not None
        record = records[change.name]
        data = canonical_json(want.definition)
        version = paths.definition_version_path(record.job_id, want.content_hash)
        await objects.put(version, data, content_type="application/json")
        await objects.put(record.minio_definition_path, data, content_type="application/json")

    await _bounded([write(change) for change in writes])
    row_changes: dict[str, Mapping[str, Any]] = {}
    for change in writes:
        assert change.desired is not None
        record = records[change.name]
        row_changes[record.job_id] = _row_fields(
            change.desired, record, commit=plan.commit, sync_id=sync_id, now=now
        )
        log.info("%s job %s from %s", change.action, change.name, change.path)
    for change in plan.changes:
        if change.action == "disable":
            assert change.live is not None
            row_changes[change.live.job_id] = {
                "enabled": False,
                "disabled_reason": REMOVED_REASON,
                "next_run_at": None,
                "last_sync_id": sync_id,
            }
            log.info("disabled job %s: %s", change.name, REMOVED_REASON)
    await database.update_jobs(row_changes)
    for change in plan.changes:
        if change.action == "delete":
            assert change.live is not None
            await objects.delete(change.live.minio_definition_path)
            await database.delete_job(change.live.job_id)
            log.info("deleted job %s", change.name)


def _row_fields(
    want: DesiredJob, live: JobRecord, *, commit: str | None, sync_id: str, now: datetime
) -> dict[str, Any]:
    job = want.job
    operator_disabled = live.disabled_reason not in (None, REMOVED_REASON)
    enabled = job.enabled and not operator_disabled
    webhook = job.triggers.webhook
    fields: dict[str, Any] = {
        "enabled": enabled,
        "disabled_reason": live.disabled_reason if operator_disabled else None,
        "content_hash": want.content_hash,
        "source_path": want.path,
        "source_commit": commit,
        "schedule_type": job.schedule.type if job.schedule else None,
        "schedule_expression": schedule_text(job),
        "timezone": job.schedule.timezone if job.schedule else None,
        "next_run_at": _next_run(job, enabled, anchor=live.created_at, now=now),
        "webhook_enabled": job.webhook_enabled,
        "webhook_rate_limit": webhook.rate_limit if webhook else None,
        "concurrent_execution_allowed": job.allow_concurrent,
        "last_sync_id": sync_id,
    }
    if webhook is not None:
        fields["webhook_id"] = live.webhook_id or secrets.token_urlsafe(24)
        if webhook.secret is None:
            # Generated once and kept; `vecron webhook rotate` makes a new one.
            fields["webhook_secret"] = live.webhook_secret or secrets.token_urlsafe(32)
        elif "${secret:" in webhook.secret:
            fields["webhook_secret"] = None  # resolved from the secret store at run time
        else:
            fields["webhook_secret"] = webhook.secret
    return fields


def _next_run(job: Job, enabled: bool, *, anchor: datetime, now: datetime) -> datetime | None:
    if not (enabled and job.scheduled and job.schedule is not None):
        return None
    return schedules.next_fire(job.schedule, after=now, anchor=anchor)


def schedule_text(job: Job) -> str | None:
    """A schedule in one line, for listings: the expression, interval or instant."""
    schedule = job.schedule
    if schedule is None:
        return None
    if schedule.type == "cron":
        return schedule.expression
    if schedule.type == "one_time":
        return schedule.at.isoformat()
    return (
        f"every {schedule.interval}"
        if isinstance(schedule.interval, str)
        else (f"every {schedule.interval:g}s")
    )
