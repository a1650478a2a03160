"""``/api/v1/jobs``: list and read jobs, run one now, enable or disable one.

Enable and disable are an operator's decision that a sync respects
(:func:`vecron.reconciler.apply._row_fields`): a job disabled here keeps
``enabled: false`` and its ``disabled_reason`` through every later sync, whatever its
file says, until it is enabled here again. Enabling never overrides the repository:
a job whose file says ``enabled: false``, or whose file was removed, answers 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from vecron.backends.database import JobRecord, TriggerSource
from vecron.reconciler.plan import REMOVED_REASON
from vecron.runtime.trigger import create_execution
from vecron.spec import schedules
from vecron.spec.models import Job, Scalar
from vecron.webhook.api_common import ApiError, Call, log, now_iso
from vecron.webhook.api_views import job_detail, job_state, job_summaries, recent_runs
from vecron.webhook.responses import json_response
from vecron.webhook.tokens import Permission

RUN_FIELDS = frozenset({"variables"})
"""The keys a ``POST /jobs/{name}/runs`` body may have."""


async def list_jobs(call: Call) -> Response:
    jobs = await call.state.stores.database.list_jobs()
    return json_response({"jobs": await job_summaries(call.state, jobs)})


async def get_job(call: Call) -> Response:
    state = call.state
    job = await state.stores.database.get_job(call.param("name"))
    definition = await state.definition(job)
    base = str(call.request.base_url) if call.caller.can(Permission.JOB_WRITE) else None
    recent = await recent_runs(state, job)
    return json_response(job_detail(job, definition, recent, webhook_base=base))


async def run_job(call: Call) -> Response:
    """A manual run: 202 with the execution; an ``Idempotency-Key`` makes a repeated
    request answer with the first execution (``Idempotent-Replayed: true``)."""
    state = call.state
    key = call.idempotency_key()
    job = await state.stores.database.get_job(call.param("name"))
    body = await call.json_object()
    definition = await state.definition(job)
    if definition is None:
        raise ApiError(409, "syncing", f"job {job.name!r} is being synced; try again in a moment")
    overrides = _overrides(body, definition)
    requested_at = now_iso()
    trigger_data: dict[str, Any] = {"requested_by": call.caller.name, "requested_at": requested_at}
    if overrides:
        trigger_data["variables"] = overrides
    record = await create_execution(
        state.stores.database,
        job,
        trigger_source=TriggerSource.MANUAL,
        trigger_data=trigger_data,
        idempotency_key=None if key is None else f"manual:{key}",
        manual_allowed=definition.triggers.manual,
    )
    replayed = record.trigger_data.get("requested_at") != requested_at
    if not replayed:
        await state.enqueue(record)
    log.info(
        "manual run of %s: execution %s%s",
        job.name,
        record.execution_id,
        " (replayed)" if replayed else "",
        extra={"token": call.caller.name, "execution_id": record.execution_id},
    )
    return json_response(
        {"execution_id": record.execution_id, "status": record.status.value},
        202,
        {"Idempotent-Replayed": "true"} if replayed else None,
    )


def _overrides(body: dict[str, Any] | None, definition: Job) -> dict[str, Scalar]:
    """The variable overrides of a run request: only the job's own variables, and
    scalars, so a caller can neither add a variable nor shadow a global secret."""
    if body is None:
        return {}
    unknown = sorted(set(body) - RUN_FIELDS)
    if unknown:
        raise ApiError(
            400, "bad_request", f"unknown field(s) {', '.join(unknown)}; the body takes variables"
        )
    variables = body.get("variables", {})
    if not isinstance(variables, dict):
        raise ApiError(400, "bad_request", "variables must be an object of name: value")
    overrides: dict[str, Scalar] = {}
    for name, value in variables.items():
        if name not in definition.variables:
            declared = ", ".join(sorted(definition.variables)) or "none"
            raise ApiError(
                400,
                "unknown_variable",
                f"job {definition.name!r} has no variable {name!r} to override "
                f"(its variables: {declared})",
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ApiError(
                400,
                "bad_request",
                f"variable {name!r} must be a string, number, boolean or null",
            )
        overrides[name] = value
    return overrides


async def enable_job(call: Call) -> Response:
    state = call.state
    database = state.stores.database
    job = await database.get_job(call.param("name"))
    if job.disabled_reason == REMOVED_REASON:
        raise ApiError(
            409,
            "file_removed",
            f"job {job.name!r} is disabled because its file was removed from the repository; "
            "restore the file to enable it",
        )
    definition = await state.definition(job)
    if definition is None:
        raise ApiError(409, "syncing", f"job {job.name!r} is being synced; try again in a moment")
    if not definition.enabled:
        raise ApiError(
            409,
            "disabled_in_repository",
            f"job {job.name!r} says enabled: false in {job.source_path or 'its file'}; "
            "enable it there",
        )
    if job.enabled and job.disabled_reason is None:
        return json_response(job_state(job))
    updated = await database.update_job(
        job.job_id,
        enabled=True,
        disabled_reason=None,
        next_run_at=await _next_run(call, job, definition),
    )
    log.info("job %s enabled by %s", job.name, call.caller.name, extra={"token": call.caller.name})
    return json_response(job_state(updated))


async def disable_job(call: Call) -> Response:
    database = call.state.stores.database
    job = await database.get_job(call.param("name"))
    if not job.enabled and job.disabled_reason not in (None, REMOVED_REASON):
        return json_response(job_state(job))  # disabled by an operator already: kept as is
    updated = await database.update_job(
        job.job_id,
        enabled=False,
        disabled_reason=f"disabled through the API by {call.caller.name}",
        next_run_at=None,
    )
    log.info("job %s disabled by %s", job.name, call.caller.name, extra={"token": call.caller.name})
    return json_response(job_state(updated))


async def _next_run(call: Call, job: JobRecord, definition: Job) -> datetime | None:
    """The next fire from now, as a sync computes it for an enabled job."""
    schedule = definition.schedule
    if not definition.scheduled or schedule is None:
        return None
    last_completed_at = None
    if schedule.type == "fixed_delay":
        last = await call.state.stores.database.last_finished_execution(job.job_id)
        last_completed_at = None if last is None else last.finished_at
    return schedules.next_fire(
        schedule,
        after=datetime.now(UTC),
        anchor=job.created_at,
        last_completed_at=last_completed_at,
    )
