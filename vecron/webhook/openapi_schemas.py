"""The JSON Schemas of the OpenAPI document: every body the server sends or takes.

They mirror :mod:`.api_views`, :mod:`.api_sync` and the receiver, closed
(``additionalProperties: false``) so that a field added to a view without its schema
fails the schemathesis run in tests/webhook/test_openapi.py.
"""

from __future__ import annotations

from typing import Any

from vecron.backends.database import SYNC_COUNTS, ExecutionStatus, SyncStatus, TriggerSource
from vecron.spec.models import NAME_PATTERN, VARIABLE_NAME_PATTERN
from vecron.webhook.signing import SCHEMES

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null`` (OpenAPI 3.1 has no ``nullable``)."""
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def closed(properties: dict[str, Schema], *, description: str | None = None) -> Schema:
    """An object with exactly ``properties``, all required."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


STRING: Schema = {"type": "string"}
INSTANT: Schema = {"type": "string", "format": "date-time"}
UUID: Schema = {"type": "string", "format": "uuid"}
COUNT: Schema = {"type": "integer", "minimum": 0}
SCALAR: Schema = {"type": ["string", "number", "boolean", "null"]}

_JOB_SUMMARY: dict[str, Schema] = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "enabled": {"type": "boolean"},
    "disabled_reason": nullable(
        {"type": "string", "description": "Why the job is disabled (null: its file says so)."}
    ),
    "schedule": nullable(ref("Schedule")),
    "next_run_at": nullable(INSTANT),
    "last_run": nullable(ref("LastRun")),
    "success_rate": nullable(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Succeeded / rated runs over the last 50 finished runs "
            "(cancelled ones not counted); null before the first.",
        }
    ),
    "rated_runs": COUNT,
    "triggers": nullable(ref("Triggers")),
}

_JOB_DETAIL: dict[str, Schema] = {
    **_JOB_SUMMARY,
    "job_id": UUID,
    "description": nullable(STRING),
    "labels": {"type": "object", "additionalProperties": STRING},
    "allow_concurrent": {"type": "boolean"},
    "timeout_seconds": nullable({"type": "integer", "minimum": 1}),
    "max_retries": nullable(COUNT),
    "variables": {
        "type": "array",
        "items": STRING,
        "description": "Names of the job's own variables (a run may override them).",
    },
    "steps": {"type": "array", "items": ref("StepOutline")},
    "webhook": nullable(ref("Webhook")),
    "content_hash": nullable({"type": "string", "description": "Git blob id of the file."}),
    "definition_version": COUNT,
    "source_path": nullable(STRING),
    "source_commit": nullable(STRING),
    "created_at": INSTANT,
    "updated_at": INSTANT,
}

_EXECUTION_SUMMARY: dict[str, Schema] = {
    "execution_id": UUID,
    "job_id": UUID,
    "job_name": STRING,
    "status": ref("ExecutionStatus"),
    "trigger_source": ref("TriggerSource"),
    "attempt": {"type": "integer", "minimum": 1},
    "scheduled_at": nullable(INSTANT),
    "queued_at": INSTANT,
    "started_at": nullable(INSTANT),
    "finished_at": nullable(INSTANT),
    "error": nullable(STRING),
    "retry_of": nullable(UUID),
}

_EXECUTION_DETAIL: dict[str, Schema] = {
    **_EXECUTION_SUMMARY,
    "definition_hash": STRING,
    "requested_by": nullable({"type": "string", "description": "The token's name."}),
    "variables": {"type": "object", "additionalProperties": SCALAR},
    "steps": {"type": "array", "items": ref("Step")},
    "context_path": nullable(
        {"type": "string", "description": "The Job Context's path in the object store."}
    ),
    "context": nullable({"type": "object", "description": "The Job Context (context.json)."}),
    "context_note": nullable(
        {"type": "string", "description": "Why the context is null, when it is."}
    ),
}

SCHEMAS: dict[str, Schema] = {
    "Error": closed(
        {
            "error": {"type": "string", "description": "A stable code, e.g. job_not_found."},
            "message": {"type": "string", "description": "What was wrong, for a person."},
        }
    ),
    "ExecutionStatus": {"type": "string", "enum": [s.value for s in ExecutionStatus]},
    "TriggerSource": {"type": "string", "enum": [s.value for s in TriggerSource]},
    "Schedule": closed(
        {
            "type": {"type": "string", "enum": ["cron", "fixed_rate", "fixed_delay", "one_time"]},
            "expression": nullable(
                {"type": "string", "description": "Cron expression, interval or instant."}
            ),
            "timezone": nullable(STRING),
        }
    ),
    "LastRun": closed(
        {
            "execution_id": UUID,
            "status": ref("ExecutionStatus"),
            "trigger_source": ref("TriggerSource"),
            "finished_at": nullable(INSTANT),
        },
        description="The newest finished run (skipped fires are not runs).",
    ),
    "Triggers": closed(
        {
            "scheduled": {"type": "boolean"},
            "manual": {"type": "boolean"},
            "webhook": {"type": "boolean"},
        }
    ),
    "JobSummary": closed(_JOB_SUMMARY),
    "JobList": closed({"jobs": {"type": "array", "items": ref("JobSummary")}}),
    "StepOutline": closed({"id": STRING, "type": STRING}),
    "Webhook": closed(
        {
            "enabled": {"type": "boolean"},
            "rate_limit": nullable({"type": "integer", "minimum": 1}),
            "schemes": {"type": "array", "items": {"type": "string", "enum": list(SCHEMES)}},
            "url": nullable(
                {
                    "type": "string",
                    "description": "The webhook's address; only for tokens with job:write.",
                }
            ),
        }
    ),
    "JobDetail": closed(_JOB_DETAIL),
    "JobState": closed(
        {
            "name": STRING,
            "enabled": {"type": "boolean"},
            "disabled_reason": nullable(STRING),
            "next_run_at": nullable(INSTANT),
        }
    ),
    "RunRequest": {
        "type": "object",
        "properties": {
            "variables": {
                "type": "object",
                "description": "Values for the job's own variables, for this run only.",
                "propertyNames": {"pattern": VARIABLE_NAME_PATTERN},
                "additionalProperties": SCALAR,
            }
        },
        "additionalProperties": False,
    },
    "RunAccepted": closed({"execution_id": UUID, "status": ref("ExecutionStatus")}),
    "RetryAccepted": closed(
        {"execution_id": UUID, "status": ref("ExecutionStatus"), "retry_of": UUID}
    ),
    "ExecutionSummary": closed(_EXECUTION_SUMMARY),
    "ExecutionPage": closed(
        {
            "executions": {"type": "array", "items": ref("ExecutionSummary")},
            "limit": {"type": "integer", "minimum": 1},
            "next": nullable(
                {"type": "string", "description": "The next page's path and query, if any."}
            ),
            "next_cursor": nullable(STRING),
        }
    ),
    "Step": closed(
        {
            "id": STRING,
            "status": {"type": "string", "enum": ["succeeded", "failed", "skipped"]},
            "started_at": nullable(INSTANT),
            "completed_at": nullable(INSTANT),
            "duration_ms": nullable({"type": "number", "minimum": 0}),
            "error": nullable(STRING),
        }
    ),
    "ExecutionDetail": closed(_EXECUTION_DETAIL),
    "SyncResult": closed(
        {
            "status": {
                "type": "string",
                "enum": [SyncStatus.OK.value, SyncStatus.DEGRADED.value],
                "description": "degraded: invalid files kept their jobs' last good definitions.",
            },
            "wrote": {"type": "boolean", "description": "false when nothing had changed."},
            "sync_id": nullable(STRING),
            "source": STRING,
            "commit": nullable(STRING),
            "counts": closed(dict.fromkeys(SYNC_COUNTS, COUNT)),
            "errors": {
                "type": "array",
                "items": closed(
                    {"path": STRING, "line": COUNT, "column": COUNT, "message": STRING}
                ),
            },
        }
    ),
    "WebhookAccepted": closed({"execution_id": UUID, "status": ref("ExecutionStatus")}),
    "Health": closed({"status": {"type": "string", "const": "ok"}, "version": STRING}),
    "Readiness": closed(
        {
            "ready": {"type": "boolean"},
            "checks": {
                "type": "object",
                "description": "ok, or the error, per backend.",
                "additionalProperties": STRING,
            },
        }
    ),
}
