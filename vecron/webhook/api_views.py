"""The JSON shapes of ``/api/v1``: jobs and executions as callers see them.

They never hold a secret: no webhook secret, no step config (a connection string may
hold a password), and the webhook URL (its id is as good as a credential to a caller
who also has the secret) only for callers with ``job:write``. ``openapi.py`` describes
the same shapes; a test keeps the two in step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from vecron.backends.database import FINAL_STATUSES, ExecutionRecord, ExecutionStatus, JobRecord
from vecron.spec.models import Job
from vecron.webhook.api_common import iso
from vecron.webhook.state import ServerState

SUCCESS_WINDOW = 50
"""How many of a job's latest finished runs its ``success_rate`` is over."""

FINISHED_RUNS = tuple(sorted(FINAL_STATUSES - {ExecutionStatus.SKIPPED}))
"""A run that ran and ended (``skipped`` fires never ran)."""

RATED_RUNS = frozenset(FINISHED_RUNS) - {ExecutionStatus.CANCELLED}
"""The runs ``success_rate`` counts: an operator's cancel says nothing of the job."""

SUMMARY_CONCURRENCY = 8
"""Jobs whose recent runs are read at once while listing."""


async def recent_runs(state: ServerState, job: JobRecord) -> list[ExecutionRecord]:
    """The job's latest finished runs, newest first (at most :data:`SUCCESS_WINDOW`)."""
    return await state.stores.database.list_executions(
        job_name=job.name, status=FINISHED_RUNS, limit=SUCCESS_WINDOW
    )


async def job_summaries(state: ServerState, jobs: Sequence[JobRecord]) -> list[dict[str, Any]]:
    """:func:`job_summary` of each job, in order, reading a few jobs at once."""
    gate = asyncio.Semaphore(SUMMARY_CONCURRENCY)

    async def one(job: JobRecord) -> dict[str, Any]:
        async with gate:
            definition = await state.definition(job)
            return job_summary(job, definition, await recent_runs(state, job))

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def job_summary(
    job: JobRecord, definition: Job | None, recent: Sequence[ExecutionRecord]
) -> dict[str, Any]:
    """A job in a listing: state, schedule, next and last run, success rate, triggers."""
    rated = [run for run in recent if run.status in RATED_RUNS]
    succeeded = sum(run.status == ExecutionStatus.SUCCEEDED for run in rated)
    last = recent[0] if recent else None
    return {
        "name": job.name,
        "enabled": job.enabled,
        "disabled_reason": job.disabled_reason,
        "schedule": None
        if job.schedule_type is None
        else {
            "type": job.schedule_type,
            "expression": job.schedule_expression,
            "timezone": job.timezone,
        },
        "next_run_at": iso(job.next_run_at),
        "last_run": None
        if last is None
        else {
            "execution_id": last.execution_id,
            "status": last.status.value,
            "trigger_source": last.trigger_source.value,
            "finished_at": iso(last.finished_at),
        },
        "success_rate": round(succeeded / len(rated), 4) if rated else None,
        "rated_runs": len(rated),
        "triggers": None if definition is None else triggers(job, definition),
    }


def triggers(job: JobRecord, definition: Job) -> dict[str, Any]:
    return {
        "scheduled": definition.scheduled,
        "manual": definition.triggers.manual,
        "webhook": job.webhook_enabled,
    }


def job_detail(
    job: JobRecord,
    definition: Job | None,
    recent: Sequence[ExecutionRecord],
    *,
    webhook_base: str | None,
) -> dict[str, Any]:
    """:func:`job_summary` and the definition's facts; ``webhook_base`` (the server's
    URL) only for a caller allowed to see the webhook's address."""
    document = job_summary(job, definition, recent)
    webhook = None if definition is None else definition.triggers.webhook
    document.update(
        {
            "job_id": job.job_id,
            "description": None if definition is None else definition.description,
            "labels": {} if definition is None else dict(definition.labels),
            "allow_concurrent": job.concurrent_execution_allowed,
            "timeout_seconds": None if definition is None else definition.timeout_seconds,
            "max_retries": None if definition is None else definition.max_retries,
            "variables": [] if definition is None else sorted(definition.variables),
            "steps": []
            if definition is None
            else [{"id": step.id, "type": step.type} for step in definition.steps],
            "webhook": None
            if webhook is None
            else {
                "enabled": job.webhook_enabled,
                "rate_limit": webhook.rate_limit,
                "schemes": list(webhook.schemes),
                "url": None
                if webhook_base is None or job.webhook_id is None
                else f"{webhook_base.rstrip('/')}/webhooks/{job.webhook_id}",
            },
            "content_hash": job.content_hash,
            "definition_version": job.definition_version,
            "source_path": job.source_path,
            "source_commit": job.source_commit,
            "created_at": iso(job.created_at),
            "updated_at": iso(job.updated_at),
        }
    )
    return document


def job_state(job: JobRecord) -> dict[str, Any]:
    """What enable and disable answer: the job's state after the change."""
    return {
        "name": job.name,
        "enabled": job.enabled,
        "disabled_reason": job.disabled_reason,
        "next_run_at": iso(job.next_run_at),
    }


def execution_summary(record: ExecutionRecord) -> dict[str, Any]:
    """An execution in a listing."""
    data = record.trigger_data
    retry_of = data.get("retry_of")
    return {
        "execution_id": record.execution_id,
        "job_id": record.job_id,
        "job_name": record.job_name,
        "status": record.status.value,
        "trigger_source": record.trigger_source.value,
        "attempt": record.attempt,
        "scheduled_at": iso(record.scheduled_at),
        "queued_at": iso(record.queued_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "error": record.error,
        "retry_of": retry_of if isinstance(retry_of, str) else None,
    }


def execution_detail(
    record: ExecutionRecord, context: dict[str, Any] | None, note: str | None
) -> dict[str, Any]:
    """One execution: its summary, steps, the context's object path and the context."""
    document = execution_summary(record)
    requested_by = record.trigger_data.get("requested_by")
    overrides = record.trigger_data.get("variables")
    document.update(
        {
            "definition_hash": record.definition_hash,
            "requested_by": requested_by if isinstance(requested_by, str) else None,
            "variables": dict(overrides) if isinstance(overrides, dict) else {},
            "steps": [_step(step) for step in record.step_statuses],
            "context_path": record.minio_context_path,
            "context": context,
            "context_note": note,
        }
    )
    return document


def _step(step: Any) -> dict[str, Any]:
    started, completed = _instant(step.get("started_at")), _instant(step.get("completed_at"))
    error = step.get("error")
    return {
        "id": str(step.get("id")),
        "status": str(step.get("status")),
        "started_at": iso(started),
        "completed_at": iso(completed),
        "duration_ms": None
        if started is None or completed is None
        else round((completed - started).total_seconds() * 1000, 3),
        "error": None if error is None else str(error),
    }


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
