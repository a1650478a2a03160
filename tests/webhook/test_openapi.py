"""``/openapi.json``: it names every route of the server and nothing else, its schemas
are valid, and schemathesis finds the real server keeping to it (no 5xx, every status,
header and body as documented), positive and negative cases alike."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Mount, Route

from tests.webhook.api_harness import Api, api
from vecron import paths
from vecron.backends.database import ExecutionStatus
from vecron.backends.queue import MemoryQueue
from vecron.runtime.metrics import Metrics
from vecron.stores import Stores
from vecron.webhook.app import create_app
from vecron.webhook.openapi import document
from vecron.webhook.signing import sign

__all__ = ["api"]  # the fixture, imported for pytest

EXAMPLES_PER_OPERATION = 20
"""Per operation and mode: about 400 requests in all, a few seconds."""

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


async def test_the_document_names_every_route_of_the_server_and_nothing_else(
    stores: Stores,
) -> None:
    queue = MemoryQueue()
    app = create_app(stores=stores, queue=queue, metrics=Metrics())
    served = set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/ui":
            continue  # the dashboard: HTML pages for people, not part of the API
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":  # Starlette's implicit twin of GET
                served.add((method, route.path))
    assert served == documented(document())
    await queue.close()


def test_every_api_operation_documents_its_security_and_refusals() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status, response in responses.items():
                assert response["description"], (path, method, status)
                if int(status) >= 400 and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}
            if not path.startswith("/api/v1/"):
                assert operation["security"] == []
                continue
            assert {"bearerAuth": []} in operation["security"], path
            assert {"401", "403", "503"} <= set(responses), path
            assert "WWW-Authenticate" in responses["401"]["headers"]
            assert "Needs the permission `" in operation["description"]
    webhook = doc["paths"]["/webhooks/{webhook_id}"]["post"]
    assert set(webhook["responses"]) == {
        "202",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "429",
    }
    headers = {p["name"] for p in webhook["parameters"] if p["in"] == "header"}
    assert headers == {
        "X-Vecron-Signature",
        "X-Vecron-Timestamp",
        "X-Hub-Signature-256",
        "Idempotency-Key",
    }
    assert "Retry-After" in webhook["responses"]["429"]["headers"]


def test_every_schema_is_valid_json_schema() -> None:
    for schema in document()["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


async def test_the_server_serves_the_document(api: Api) -> None:
    response = await api.client.get(f"{api.url}/openapi.json")
    assert response.status_code == 200
    assert response.json() == document()


@dataclass(frozen=True)
class Real:
    """A request with real data (a job, an execution that exist) and the status it gets."""

    method: str
    path: str
    status: int
    path_parameters: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    raw: bytes | None = None


@pytest.mark.parametrize("stores", ["embedded"], indirect=True)
async def test_schemathesis_finds_the_server_true_to_its_document(api: Api) -> None:
    failed = await api.add_execution("report", status=ExecutionStatus.FAILED)
    job = await api.stores.database.get_job("report")
    context_path = paths.context_path(job.job_id, failed.execution_id)
    await api.stores.objects.put(context_path, json.dumps({"version": 1, "steps": {}}).encode())
    await api.stores.database.update_execution(
        failed.execution_id,
        minio_context_path=context_path,
        step_statuses=[
            {
                "id": "fetch",
                "status": "failed",
                "started_at": "2026-11-01T00:00:00+00:00",
                "completed_at": "2026-11-01T00:00:01+00:00",
                "error": "HTTP 500",
            }
        ],
    )
    succeeded = await api.add_execution("report", status=ExecutionStatus.SUCCEEDED)
    hooked = await api.stores.database.get_job("hooked")
    assert hooked.webhook_id is not None
    assert hooked.webhook_secret is not None
    delivery = b'{"order": 7}'
    jobs, runs, execution = (
        "/api/v1/jobs/{name}",
        "/api/v1/jobs/{name}/runs",
        ("/api/v1/executions/{execution_id}"),
    )
    real = [
        Real("GET", "/api/v1/jobs", 200),
        Real("GET", jobs, 200, {"name": "report"}),
        Real("GET", jobs, 200, {"name": "hooked"}),
        Real("GET", jobs, 404, {"name": "ghost"}),
        Real("POST", runs, 202, {"name": "serial"}),
        Real("POST", runs, 409, {"name": "serial"}),
        Real("POST", runs, 403, {"name": "no-manual"}),
        Real(
            "POST",
            runs,
            202,
            {"name": "report"},
            headers={"Idempotency-Key": "k1"},
            body={"variables": {"REGION": "apac", "LIMIT": 3}},
        ),
        Real("POST", runs, 400, {"name": "report"}, body={"variables": {"NOPE": 1}}),
        Real("POST", "/api/v1/jobs/{name}/disable", 200, {"name": "report"}),
        Real("POST", "/api/v1/jobs/{name}/enable", 200, {"name": "report"}),
        Real("POST", "/api/v1/jobs/{name}/enable", 409, {"name": "file-off"}),
        Real("GET", "/api/v1/executions", 200, query={"limit": 1, "status": ["failed"]}),
        Real("GET", "/api/v1/executions", 400, query={"since": "yesterday"}),
        Real("GET", execution, 200, {"execution_id": failed.execution_id}),
        Real("POST", execution + "/retry", 202, {"execution_id": failed.execution_id}),
        Real("POST", execution + "/retry", 409, {"execution_id": succeeded.execution_id}),
        Real("POST", "/api/v1/sync", 200),
        Real(
            "POST",
            "/webhooks/{webhook_id}",
            202,
            {"webhook_id": hooked.webhook_id},
            headers={"Content-Type": "application/json", **sign(hooked.webhook_secret, delivery)},
            raw=delivery,
        ),
        Real("POST", "/webhooks/{webhook_id}", 401, {"webhook_id": hooked.webhook_id}),
        Real("GET", "/healthz", 200),
        Real("GET", "/readyz", 200),
        Real("GET", "/metrics", 200),
    ]
    failures = await asyncio.to_thread(fuzz, api.url, api.tokens["admin"], real)
    assert not failures, "\n\n".join(failures)
    assert (await api.client.get(f"{api.url}/healthz")).status_code == 200


def fuzz(base_url: str, token: str, real: list[Real]) -> list[str]:
    """Check the ``real`` requests, then let schemathesis generate requests for every
    operation, positive then negative; returns the failures."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    with requests.Session() as session:
        for request in real:
            operation = schema[request.path][request.method]
            content: dict[str, Any] = {}
            if request.body is not None or request.raw is not None:
                content["body"] = request.raw if request.raw is not None else request.body
                content["media_type"] = "application/json"
            case = operation.Case(
                path_parameters=request.path_parameters,
                query=request.query,
                headers=request.headers,
                **content,
            )
            try:
                response = case.call_and_validate(base_url=base_url, session=session, headers=auth)
                assert response.status_code == request.status, response.text
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{request}: {exc}")
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: Any) -> None:
                    # A schema cannot say which cursors the server gave out.
                    opaque = "cursor" in (case.query or {})
                    case.call_and_validate(
                        base_url=base_url,
                        session=session,
                        headers=auth,
                        excluded_checks=[positive_data_acceptance] if opaque else [],
                    )

                try:
                    check()
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE  # nothing to get wrong: no inputs
                except (Exception, BaseExceptionGroup) as exc:
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures
