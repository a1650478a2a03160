"""Starting a run: one execution row, checked against the job's triggers and concurrency."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from vecron import paths
from vecron.backends.database import (
    Database,
    ExecutionRecord,
    ExecutionStatus,
    JobRecord,
    TriggerSource,
)
from vecron.backends.objectstore import ObjectStore
from vecron.errors import JobNotFound, ObjectNotFound, RunInFlight, TriggerRefused
from vecron.spec.models import Job


async def create_execution(
    database: Database,
    job_name: str | JobRecord,
    *,
    trigger_source: TriggerSource,
    trigger_data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    scheduled_at: datetime | None = None,
    manual_allowed: bool = True,
) -> ExecutionRecord:
    """Record a new queued execution of ``job_name`` and return it.

    Raises :class:`TriggerRefused` for a disabled job, a manual trigger the job turned
    off, a job whose definition is still being written, or a run in flight when the job
    does not allow concurrent runs. With an ``idempotency_key`` already used for this
    job, the first execution is returned instead of a new one.
    """
    job = await database.get_job(job_name) if isinstance(job_name, str) else job_name
    job_name = job.name
    if not job.enabled:
        reason = f" ({job.disabled_reason})" if job.disabled_reason else ""
        raise TriggerRefused(f"job {job_name!r} is disabled{reason}", reason="disabled")
    if trigger_source == TriggerSource.MANUAL and not manual_allowed:
        raise TriggerRefused(
            f"job {job_name!r} does not allow manual runs (triggers.manual is false)",
            reason="trigger_off",
        )
    if job.content_hash is None:
        raise TriggerRefused(
            f"job {job_name!r} is being synced; try again in a moment", reason="syncing"
        )
    record = ExecutionRecord(
        job_id=job.job_id,
        job_name=job.name,
        definition_hash=job.content_hash,
        status=ExecutionStatus.QUEUED,
        trigger_source=trigger_source,
        trigger_data=dict(trigger_data or {}),
        idempotency_key=idempotency_key,
        scheduled_at=scheduled_at,
    )
    try:
        # Atomic: the check for a run in flight and the insert are one transaction.
        return await database.create_execution(
            record, exclusive=not job.concurrent_execution_allowed
        )
    except RunInFlight:
        raise TriggerRefused(
            f"job {job_name!r} is already running and does not allow concurrent runs "
            "(allow_concurrent: false)",
            reason="concurrent",
        ) from None


async def load_definition(objects: ObjectStore, job_id: str, content_hash: str) -> Job:
    """The definition version ``content_hash`` of a job, from the object store."""
    data = await objects.get(paths.definition_version_path(job_id, content_hash))
    return Job.model_validate(json.loads(data))


#: Executions an operator may run again (``vecron retry``, ``POST …/retry``).
RETRYABLE = frozenset(
    {
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.INTERRUPTED,
        ExecutionStatus.DEAD_LETTERED,
    }
)


async def retry_execution(
    database: Database, objects: ObjectStore, execution_id: str, *, requested_by: str
) -> tuple[ExecutionRecord, ExecutionRecord, bool]:
    """A new queued execution that runs a finished one again: the job's current
    definition, the same trigger source, trigger data (the payload included) and
    scheduled time, with ``retry_of`` added. Returns the original, the new execution,
    and whether it was there already (retrying one execution twice gives the first
    retry). Refusals are :class:`TriggerRefused`: ``not_retryable`` (not failed,
    timed out, interrupted or dead-lettered), ``job_gone``, or those of
    :func:`create_execution`.
    """
    original = await database.get_execution(execution_id)
    if original.status not in RETRYABLE:
        allowed = ", ".join(sorted(s.value for s in RETRYABLE))
        raise TriggerRefused(
            f"execution {original.execution_id} is {original.status.value}; "
            f"only {allowed} executions can be retried",
            reason="not_retryable",
        )
    try:
        job = await database.get_job_by_id(original.job_id)
    except JobNotFound:
        raise TriggerRefused(
            f"job {original.job_name!r} of execution {original.execution_id} no longer exists",
            reason="job_gone",
        ) from None
    manual = True
    if job.content_hash is not None:
        try:
            definition = await load_definition(objects, job.job_id, job.content_hash)
        except ObjectNotFound:
            raise TriggerRefused(
                f"job {job.name!r} is being synced; try again in a moment", reason="syncing"
            ) from None
        manual = definition.triggers.manual
    requested_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    trigger_data = {
        **original.trigger_data,
        "retry_of": original.execution_id,
        "requested_by": requested_by,
        "requested_at": requested_at,
    }
    record = await create_execution(
        database,
        job,
        trigger_source=original.trigger_source,
        trigger_data=trigger_data,
        idempotency_key=f"retry:{original.execution_id}",
        scheduled_at=original.scheduled_at,
        manual_allowed=manual,
    )
    return original, record, record.trigger_data.get("requested_at") != requested_at
