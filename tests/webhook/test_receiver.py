"""``POST /webhooks/{id}`` against a real server over both store backends.

Every refusal answers with its status and a JSON error, and leaves nothing behind: no
execution row, nothing queued. Accepted deliveries start runs whose steps read the
payload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.runtime.http_target import HttpTarget, serve_http_target
from tests.webhook.serving import served
from vecron.backends.database import ExecutionStatus, JobRecord, TriggerSource
from vecron.backends.queue import MemoryQueue
from vecron.backends.ratelimit import MemoryRateLimiter
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.runtime.metrics import Metrics
from vecron.runtime.steps.http import HttpStepExecutor
from vecron.runtime.worker import Worker
from vecron.stores import Stores
from vecron.webhook.app import create_app
from vecron.webhook.signing import sign
from vecron.webhook.state import ServerState

BODY_LIMIT = 4096

JOBS = {
    # A generated secret, the default scheme; its step reads the payload.
    "hooked.yaml": """\
name: hooked
allow_concurrent: true
triggers:
  webhook:
    rate_limit: 1000
    headers: [X-Request-Id, Authorization, X-Vecron-Signature]
steps:
  - id: notify
    type: http
    config:
      method: POST
      url: "${API}/echo"
      body: {user: "{{webhook.payload.user_id}}", request: "{{webhook.headers.x-request-id}}"}
""",
    # GitHub's scheme only, its secret from the secret store.
    "github.yaml": """\
name: github
allow_concurrent: true
triggers:
  webhook: {secret: "${secret:GH_HOOK}", schemes: [github], rate_limit: null}
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
    "limited.yaml": """\
name: limited
allow_concurrent: true
triggers:
  webhook: {rate_limit: 3}
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
    "serial.yaml": """\
name: serial
allow_concurrent: false
triggers:
  webhook: {}
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
    "off.yaml": """\
name: off
triggers:
  webhook: {enabled: false}
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
}


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served_target:
        yield served_target


@dataclass
class Hooks:
    stores: Stores
    queue: MemoryQueue
    url: str
    client: httpx.AsyncClient
    state: ServerState
    repo: Path

    async def job(self, name: str) -> JobRecord:
        return await self.stores.database.get_job(name)

    async def post(
        self,
        name: str,
        body: bytes = b'{"user_id": 42}',
        *,
        secret: str | None = None,
        scheme: str = "vecron",
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        webhook_id: str | None = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        job = await self.job(name)
        key = secret if secret is not None else job.webhook_secret
        assert key is not None
        signed = sign(key, body, scheme=scheme, timestamp=timestamp)  # type: ignore[arg-type]
        all_headers = {"Content-Type": content_type, **signed, **(headers or {})}
        return await self.client.post(
            f"{self.url}/webhooks/{webhook_id or job.webhook_id}",
            content=body,
            headers=all_headers,
            params=params,
        )

    async def executions(self) -> int:
        return len(await self.stores.database.list_executions(limit=500))


@pytest.fixture
async def hooks(stores: Stores, tmp_path: Path, target: HttpTarget) -> AsyncIterator[Hooks]:
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    (repo / "variables.yaml").write_text(f"API: {target.url('').rstrip('/')}\n")
    for name, text in JOBS.items():
        (repo / "jobs" / name).write_text(text)
    await stores.database.set_variable(
        "GH_HOOK", "It's a Secret to Everybody", secret=True, source="cli"
    )
    await sync_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
    queue = MemoryQueue(ack_wait_seconds=30)
    app = create_app(
        stores=stores,
        queue=queue,
        metrics=Metrics(),
        rate_limiter=MemoryRateLimiter(),
        body_limit=BODY_LIMIT,
    )
    async with served(app) as url, httpx.AsyncClient(timeout=10) as client:
        yield Hooks(stores, queue, url, client, app.state.vecron, repo)
    await queue.close()


async def refused(hooks: Hooks, response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == code
    assert response.json()["message"]
    assert await hooks.executions() == 0
    assert await hooks.queue.pending() == 0


# -- accepted ---------------------------------------------------------------------------


async def test_a_signed_delivery_starts_a_run_whose_steps_read_the_payload(
    hooks: Hooks,
) -> None:
    response = await hooks.post(
        "hooked",
        b'{"user_id": 42, "kind": "order"}',
        headers={"X-Request-Id": "req-7", "Authorization": "Bearer s3cr3t-token"},
        params={"source": "partner"},
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    record = await hooks.stores.database.get_execution(execution_id)
    assert record.trigger_source == TriggerSource.WEBHOOK
    data = record.trigger_data
    assert data["payload"] == {"user_id": 42, "kind": "order"}
    assert data["query_params"] == {"source": "partner"}
    # Configured headers are copied; credentials masked, signatures never.
    assert data["headers"] == {"x-request-id": "req-7", "authorization": "******"}
    assert "s3cr3t-token" not in json.dumps(data)
    assert data["received_at"].endswith("Z")

    (delivery,) = await hooks.queue.fetch(batch=1, timeout_seconds=1)
    assert delivery.message.execution_id == execution_id
    http = HttpStepExecutor()
    try:
        worker = Worker(stores=hooks.stores, queue=hooks.queue, executors={"http": http})
        await worker.process(delivery)
    finally:
        await http.close()
    done = await hooks.stores.database.get_execution(execution_id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.minio_context_path is not None
    context = json.loads(await hooks.stores.objects.get(done.minio_context_path))
    assert context["webhook"]["payload"]["user_id"] == 42
    sent = context["steps"]["notify"]["output"]["body"]["body"]
    assert sent == {"user": 42, "request": "req-7"}


async def test_form_and_text_payloads_are_accepted(hooks: Hooks) -> None:
    form = await hooks.post(
        "hooked", b"a=1&b=2&b=3", content_type="application/x-www-form-urlencoded"
    )
    text = await hooks.post("hooked", "xin chào".encode(), content_type="text/plain")
    assert (form.status_code, text.status_code) == (202, 202)
    records = {
        r.execution_id: r.trigger_data["payload"]
        for r in await hooks.stores.database.list_executions()
    }
    assert records[form.json()["execution_id"]] == {"a": "1", "b": ["2", "3"]}
    assert records[text.json()["execution_id"]] == "xin chào"


async def test_github_signatures_are_computed_as_github_documents(hooks: Hooks) -> None:
    body = b"Hello, World!"
    # GitHub's documented example: this secret and payload give this signature.
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    digest = hmac.new(b"It's a Secret to Everybody", body, hashlib.sha256).hexdigest()
    assert digest == expected
    job = await hooks.job("github")
    response = await hooks.client.post(
        f"{hooks.url}/webhooks/{job.webhook_id}",
        content=body,
        headers={"Content-Type": "text/plain", "X-Hub-Signature-256": f"sha256={expected}"},
    )
    assert response.status_code == 202, response.text
    # The vecron scheme is not one this job accepts.
    vecron_signed = await hooks.post("github", body, secret="It's a Secret to Everybody")
    assert vecron_signed.status_code == 401


async def test_a_redelivery_with_its_idempotency_key_returns_the_first_run(hooks: Hooks) -> None:
    first = await hooks.post("hooked", headers={"Idempotency-Key": "delivery-1"})
    again = await hooks.post("hooked", headers={"Idempotency-Key": "delivery-1"})
    other = await hooks.post("hooked", headers={"Idempotency-Key": "delivery-2"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 202)
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.json()["execution_id"] != first.json()["execution_id"]
    assert await hooks.executions() == 2
    assert await hooks.queue.pending() == 2


async def test_a_secret_can_come_from_the_environment(hooks: Hooks) -> None:
    await hooks.stores.database.delete_variable("GH_HOOK")
    hooks.state.environ = {"VECRON_SECRET_GH_HOOK": "from-the-env"}
    hooks.state._secrets = None  # drop the cached secret variables
    body = b"{}"
    digest = hmac.new(b"from-the-env", body, hashlib.sha256).hexdigest()
    job = await hooks.job("github")
    response = await hooks.client.post(
        f"{hooks.url}/webhooks/{job.webhook_id}",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"},
    )
    assert response.status_code == 202, response.text


# -- refused ----------------------------------------------------------------------------


async def test_an_unknown_id_is_404(hooks: Hooks) -> None:
    response = await hooks.post("hooked", webhook_id="no-such-hook")
    await refused(hooks, response, 404, "not_found")


@pytest.mark.parametrize(
    "change",
    ["no signature", "wrong secret", "tampered body", "no timestamp"],
)
async def test_a_bad_or_missing_signature_is_401(hooks: Hooks, change: str) -> None:
    job = await hooks.job("hooked")
    assert job.webhook_secret is not None
    body = b'{"user_id": 1}'
    headers = {"Content-Type": "application/json", **sign(job.webhook_secret, body)}
    if change == "no signature":
        del headers["X-Vecron-Signature"]
    elif change == "wrong secret":
        headers.update(sign("not-the-secret", body))
    elif change == "tampered body":
        body = b'{"user_id": 2}'
    else:
        del headers["X-Vecron-Timestamp"]
    response = await hooks.client.post(
        f"{hooks.url}/webhooks/{job.webhook_id}", content=body, headers=headers
    )
    await refused(hooks, response, 401, "bad_signature")
    assert job.webhook_secret not in response.text


async def test_a_replayed_request_is_refused_once_its_timestamp_is_stale(hooks: Hooks) -> None:
    job = await hooks.job("hooked")
    assert job.webhook_secret is not None
    body = b'{"user_id": 1}'
    headers = {"Content-Type": "application/json", **sign(job.webhook_secret, body)}
    url = f"{hooks.url}/webhooks/{job.webhook_id}"
    assert (await hooks.client.post(url, content=body, headers=headers)).status_code == 202
    # The same captured request, 301 s later: refused, nothing more recorded.
    hooks.state.clock = lambda: time.time() + 301
    replay = await hooks.client.post(url, content=body, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["message"] == "stale timestamp"
    assert await hooks.executions() == 1
    # And one signed 301 s in the past is stale now.
    hooks.state.clock = time.time
    old = await hooks.post("hooked", timestamp=int(time.time()) - 301)
    assert old.status_code == 401
    assert await hooks.executions() == 1


async def test_a_disabled_job_or_trigger_is_403_even_right_after_an_accepted_delivery(
    hooks: Hooks,
) -> None:
    await refused(hooks, await hooks.post("off"), 403, "webhook_off")
    assert (await hooks.post("hooked")).status_code == 202
    job = await hooks.job("hooked")
    await hooks.stores.database.update_job(job.job_id, enabled=False, disabled_reason="paused")
    # Within the receiver's cache lifetime: the accepted path reads the job afresh.
    response = await hooks.post("hooked")
    assert response.status_code == 403
    assert response.json()["error"] == "job_disabled"
    assert await hooks.executions() == 1


async def test_a_rotated_id_answers_404_at_once(hooks: Hooks) -> None:
    job = await hooks.job("hooked")
    assert (await hooks.post("hooked")).status_code == 202
    await hooks.stores.database.update_job(job.job_id, webhook_id="rotated-id-0123456789abc")
    response = await hooks.post("hooked", webhook_id=job.webhook_id)
    assert response.status_code == 404
    assert await hooks.executions() == 1
    assert (await hooks.post("hooked", webhook_id="rotated-id-0123456789abc")).status_code == 202


async def test_a_run_in_flight_refuses_a_job_without_concurrency_409(hooks: Hooks) -> None:
    first = await hooks.post("serial")
    assert first.status_code == 202
    second = await hooks.post("serial")
    assert second.status_code == 409
    assert second.json()["error"] == "run_in_flight"
    assert await hooks.executions() == 1
    assert await hooks.queue.pending() == 1


async def test_an_oversized_body_is_413_declared_or_streamed(hooks: Hooks) -> None:
    big = b'{"x": "' + b"a" * BODY_LIMIT + b'"}'
    await refused(hooks, await hooks.post("hooked", big), 413, "payload_too_large")
    job = await hooks.job("hooked")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"a" * 1024

    streamed = await hooks.client.post(
        f"{hooks.url}/webhooks/{job.webhook_id}",
        content=chunks(),
        headers={"Content-Type": "text/plain", **sign(job.webhook_secret or "", b"")},
    )
    await refused(hooks, streamed, 413, "payload_too_large")


async def test_an_unsupported_content_type_is_415_and_bad_json_400(hooks: Hooks) -> None:
    xml = await hooks.post("hooked", b"<a/>", content_type="application/xml")
    await refused(hooks, xml, 415, "unsupported_content_type")
    broken = await hooks.post("hooked", b'{"user_id": ')
    await refused(hooks, broken, 400, "malformed_payload")


async def test_over_the_rate_limit_is_429_with_retry_after(hooks: Hooks) -> None:
    answers = [(await hooks.post("limited")).status_code for _ in range(3)]
    assert answers == [202, 202, 202]
    over = await hooks.post("limited")
    assert over.status_code == 429
    assert over.json()["error"] == "rate_limited"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert await hooks.executions() == 3
    assert await hooks.queue.pending() == 3


async def test_bad_signatures_do_not_use_up_the_rate_limit(hooks: Hooks) -> None:
    for _ in range(10):
        assert (await hooks.post("limited", secret="wrong")).status_code == 401
    assert (await hooks.post("limited")).status_code == 202


async def test_a_malformed_idempotency_key_is_400(hooks: Hooks) -> None:
    response = await hooks.post("hooked", headers={"Idempotency-Key": "x" * 201})
    await refused(hooks, response, 400, "bad_idempotency_key")


async def test_only_post_is_allowed(hooks: Hooks) -> None:
    job = await hooks.job("hooked")
    response = await hooks.client.get(f"{hooks.url}/webhooks/{job.webhook_id}")
    assert response.status_code == 405
    assert await hooks.executions() == 0
