"""The Job Context: what one execution knows, step by step.

Its shape is :mod:`vecron.spec.contextkeys` (the validator checks references against
the same names): ``job``, ``execution``, ``variables``, ``webhook`` (webhook runs only)
and ``steps``, where every step that ran or was skipped has
``{status, started_at, completed_at, output, error}`` and an http step's output is
also reachable as ``response``. It is stored as ``context.json`` in the object store
after every step. Secret values never enter it: secret variables are left out, and
every step output and error is scrubbed of the secrets the step resolved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from vecron.backends.database import ExecutionRecord
from vecron.backends.objectstore import ObjectStore
from vecron.spec import schedules
from vecron.spec.models import Job
from vecron.spec.references import value_to_text

CONTEXT_VERSION = 1


def initial_context(
    *,
    job: Job,
    job_id: str,
    execution: ExecutionRecord,
    variables: Mapping[str, Any],
    started_at: datetime,
) -> dict[str, Any]:
    """The context before the first step. ``variables`` are the plain (non-secret) ones.

    ``execution.date`` is the day the run was scheduled for (or started), as
    ``YYYY-MM-DD`` in the job's timezone (the schedule's, else the default).
    """
    timezone = schedules.zone(job.schedule.timezone if job.schedule else schedules.DEFAULT_TIMEZONE)
    moment = execution.scheduled_at or started_at
    context: dict[str, Any] = {
        "job": {
            "id": job_id,
            "name": job.name,
            "description": job.description,
            "labels": dict(job.labels),
        },
        "execution": {
            "id": execution.execution_id,
            "date": moment.astimezone(timezone).date().isoformat(),
            "trigger_source": str(execution.trigger_source),
            "attempt": execution.attempt,
            "started_at": _iso(started_at),
            "scheduled_at": _iso(execution.scheduled_at),
        },
        "variables": dict(variables),
        "steps": {},
    }
    if str(execution.trigger_source) == "webhook":
        data = execution.trigger_data
        context["webhook"] = {
            "payload": data.get("payload"),
            "query_params": dict(data.get("query_params") or {}),
            "headers": dict(data.get("headers") or {}),
            "received_at": data.get("received_at"),
        }
    return context


def step_entry(
    *,
    step_type: str,
    status: str,
    started_at: datetime,
    completed_at: datetime,
    output: Any,
    error: str | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "status": status,
        "started_at": _iso(started_at),
        "completed_at": _iso(completed_at),
        "output": output,
        "error": error,
    }
    if step_type == "http":
        entry["response"] = output
    return entry


def scrub_value(value: Any, scrub: Any) -> Any:
    """``value`` with ``scrub`` (a text -> text function) applied to every string in it."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrub(str(k)): scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item, scrub) for item in value]
    return value


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def to_json(context: Mapping[str, Any]) -> bytes:
    """The stored form of a context: compact UTF-8 JSON; non-JSON values as text.

    orjson writes it (five to ten times the standard library's rate); what orjson will
    not write (an integer past 64 bits) falls back to :mod:`json`, with the same result.
    """
    document = {"version": CONTEXT_VERSION, **context}
    try:
        return orjson.dumps(document, default=_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(
            document, ensure_ascii=False, default=_default, separators=(",", ":")
        ).encode()


async def save(objects: ObjectStore, path: str, context: Mapping[str, Any]) -> None:
    await objects.put(path, to_json(context), content_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return value_to_text(value)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
