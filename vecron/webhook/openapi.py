"""The OpenAPI 3.1 document of the whole server, served at ``/openapi.json``.

It is written here, in code, rather than generated: the routes are few, and every
status a route can answer, with its headers, is part of the contract. Tests keep it
honest: every route of :func:`vecron.webhook.app.create_app` must be in it and nothing
else, and schemathesis checks the real server's answers against it.
"""

from __future__ import annotations

import copy
from typing import Any

from vecron import __version__
from vecron.spec.models import NAME_PATTERN
from vecron.webhook.openapi_schemas import SCHEMAS, Schema, ref

OPENAPI_VERSION = "3.1.0"
API = "/api/v1"

_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_STRING: Schema = {"type": "string"}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ok(description: str, schema: Schema, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or _STRING}


_RETRY_AFTER = {
    "Retry-After": _header("Seconds to wait.", {"type": "string", "pattern": "^[0-9]+$"})
}
_REPLAYED = {
    "Idempotent-Replayed": _header(
        "true when the answer is an earlier request's (same Idempotency-Key).",
        {"type": "string", "enum": ["true"]},
    )
}
_CHALLENGE = {"WWW-Authenticate": _header('Bearer realm="vecron" (RFC 6750).')}
_BACKEND_DOWN = _error("A backend (database, object store) is unavailable.")


def _api(
    summary: str,
    responses: dict[str, Any],
    *,
    tag: str,
    permission: str,
    parameters: list[Any] | None = None,
    body: dict[str, Any] | None = None,
    security: list[Any] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """An operation under /api/v1, with the refusals every one of them may answer."""
    operation: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "description": (description + "\n\n" if description else "")
        + f"Needs the permission `{permission}`.",
        "security": security or _BEARER,
        "responses": {
            **responses,
            "401": _error("No valid API token.", _CHALLENGE),
            "403": responses.get("403") or _error(f"The token's role does not have {permission}."),
            "503": _BACKEND_DOWN,
        },
    }
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    return operation


_JOB_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The job's name.",
    "schema": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 128},
}
_EXECUTION_ID = {
    "name": "execution_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeating a request with the same key answers with the first run.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"},
}


def _query(name: str, schema: Schema, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **extra,
    }


_EXECUTION_FILTERS = [
    _query("job", {"type": "string"}, "Only this job's executions."),
    _query(
        "status",
        {"type": "array", "items": ref("ExecutionStatus")},
        "Only these statuses (repeat the parameter, or separate with commas).",
        style="form",
        explode=True,
    ),
    _query("trigger_source", ref("TriggerSource"), "Only runs started this way."),
    _query("since", {"type": "string", "format": "date-time"}, "queued_at >= since (with offset)."),
    _query("until", {"type": "string", "format": "date-time"}, "queued_at < until (with offset)."),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
    _query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "Rows to skip (instead of cursor).",
    ),
    _query("cursor", {"type": "string", "maxLength": 200}, "From a page's next_cursor."),
]


def _api_paths() -> dict[str, Any]:
    return {
        f"{API}/jobs": {
            "get": _api(
                "List jobs: state, schedule, next and last run, success rate",
                {"200": _ok("The jobs, by name.", ref("JobList"))},
                tag="jobs",
                permission="job:read",
            )
        },
        f"{API}/jobs/{{name}}": {
            "get": _api(
                "Read one job",
                {
                    "200": _ok("The job.", ref("JobDetail")),
                    "404": _error("No such job."),
                },
                tag="jobs",
                permission="job:read",
                parameters=[_JOB_NAME],
                description="The webhook's URL is shown only to tokens with job:write; "
                "its secret never.",
            )
        },
        f"{API}/jobs/{{name}}/runs": {
            "post": _api(
                "Run a job now (a manual trigger)",
                {
                    "202": _ok("Queued.", ref("RunAccepted"), _REPLAYED),
                    "400": _error("A malformed body, variable or Idempotency-Key."),
                    "403": _error(
                        "The token lacks job:execute, the job is disabled, or its manual "
                        "trigger is off."
                    ),
                    "404": _error("No such job."),
                    "409": _error(
                        "A run is in flight and the job forbids concurrent runs, or the job "
                        "is being synced."
                    ),
                    "413": _error("The body is too large."),
                    "415": _error("The body is not application/json."),
                },
                tag="jobs",
                permission="job:execute",
                parameters=[_JOB_NAME, _IDEMPOTENCY_KEY],
                body={
                    "required": False,
                    "content": {"application/json": {"schema": ref("RunRequest")}},
                },
            )
        },
        f"{API}/jobs/{{name}}/enable": {
            "post": _api(
                "Enable a job that an operator disabled",
                {
                    "200": _ok("The job's state.", ref("JobState")),
                    "404": _error("No such job."),
                    "409": _error(
                        "The job's file says enabled: false or was removed, or it is being synced."
                    ),
                },
                tag="jobs",
                permission="job:write",
                parameters=[_JOB_NAME],
            )
        },
        f"{API}/jobs/{{name}}/disable": {
            "post": _api(
                "Disable a job (later syncs keep it disabled)",
                {"200": _ok("The job's state.", ref("JobState")), "404": _error("No such job.")},
                tag="jobs",
                permission="job:write",
                parameters=[_JOB_NAME],
            )
        },
        f"{API}/executions": {
            "get": _api(
                "List executions, newest first",
                {
                    "200": _ok("One page.", ref("ExecutionPage")),
                    "400": _error("A filter or paging value is malformed; the message names it."),
                },
                tag="executions",
                permission="execution:read",
                parameters=_EXECUTION_FILTERS,
            )
        },
        f"{API}/executions/{{execution_id}}": {
            "get": _api(
                "Read one execution: steps, error, the context and its path",
                {
                    "200": _ok("The execution.", ref("ExecutionDetail")),
                    "404": _error("No such execution."),
                },
                tag="executions",
                permission="execution:read",
                parameters=[_EXECUTION_ID],
            )
        },
        f"{API}/executions/{{execution_id}}/retry": {
            "post": _api(
                "Retry a failed, timed-out, interrupted or dead-lettered execution",
                {
                    "202": _ok("Queued.", ref("RetryAccepted"), _REPLAYED),
                    "403": _error(
                        "The token lacks job:execute, the job is disabled, or its manual "
                        "trigger is off (for a manual run)."
                    ),
                    "404": _error("No such execution, or its job is gone."),
                    "409": _error(
                        "The execution cannot be retried, a run is in flight, or the job is "
                        "being synced."
                    ),
                },
                tag="executions",
                permission="job:execute",
                parameters=[_EXECUTION_ID],
            )
        },
        f"{API}/sync": {
            "post": _api(
                "Sync the stores from the configured job repository now",
                {
                    "200": _ok("What the sync did.", ref("SyncResult")),
                    "409": _error(
                        "No repository is configured, a safety rule refused the sync, or "
                        "another sync ran past the wait.",
                        _RETRY_AFTER,
                    ),
                    "413": _error("A signed push's body is too large."),
                    "502": _error("The repository cannot be read."),
                },
                tag="sync",
                permission="job:write",
                security=[*_BEARER, {"syncSignature": []}],
                description="Instead of a token, a Git host's push webhook signed with "
                "VECRON_SYNC_SECRET in GitHub's scheme (X-Hub-Signature-256).",
            )
        },
    }


def _server_paths() -> dict[str, Any]:
    webhook_headers = [
        {"name": name, "in": "header", "required": False, "description": text, "schema": _STRING}
        for name, text in (
            ("X-Vecron-Signature", "sha256=<hex> of '{timestamp}.{body}' (vecron scheme)."),
            ("X-Vecron-Timestamp", "Unix seconds; refused beyond 300 s from now."),
            ("X-Hub-Signature-256", "sha256=<hex> of the body (github scheme)."),
        )
    ]
    return {
        "/webhooks/{webhook_id}": {
            "post": {
                "tags": ["webhooks"],
                "summary": "A signed delivery that starts a job's run",
                "security": [],
                "parameters": [
                    {"name": "webhook_id", "in": "path", "required": True, "schema": _STRING},
                    *webhook_headers,
                    _IDEMPOTENCY_KEY,
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {"schema": {}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                        "text/plain": {"schema": _STRING},
                    },
                },
                "responses": {
                    "202": _ok("Accepted: a run is queued.", ref("WebhookAccepted"), _REPLAYED),
                    "400": _error("A malformed body or Idempotency-Key."),
                    "401": _error("A missing, wrong or stale signature."),
                    "403": _error("The job is disabled or its webhook trigger is off."),
                    "404": _error("No webhook has this id."),
                    "409": _error("A run is in flight and the job forbids concurrent runs."),
                    "413": _error("The body is over the limit (1 MiB by default)."),
                    "415": _error("Not JSON, a form or text."),
                    "429": _error("Over the job's rate limit.", _RETRY_AFTER),
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _ok("The process answers.", ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "summary": "Readiness: every backend answers",
                "security": [],
                "responses": {
                    "200": _ok("Ready.", ref("Readiness")),
                    "503": _ok("A backend does not answer.", ref("Readiness")),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The text exposition format.",
                        "content": {"text/plain": {"schema": _STRING}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["operations"],
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok("OpenAPI 3.1.", {"type": "object"})},
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(
        {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "vecron",
                "version": __version__,
                "description": "Webhooks, the manual-trigger and read API, and operations. "
                'Errors are {"error": CODE, "message": TEXT}.',
            },
            "tags": [
                {"name": "jobs"},
                {"name": "executions"},
                {"name": "sync"},
                {"name": "webhooks"},
                {"name": "operations"},
            ],
            "paths": {**_api_paths(), **_server_paths()},
            "components": {
                "schemas": SCHEMAS,
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API token (vecron token create NAME --role ROLE).",
                    },
                    "syncSignature": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "X-Hub-Signature-256",
                        "description": "sha256=<hex> HMAC of the body with VECRON_SYNC_SECRET.",
                    },
                },
            },
        }
    )
