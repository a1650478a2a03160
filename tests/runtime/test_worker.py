"""The worker end to end: a synced job, a trigger, the steps against a real HTTP server.

Runs on the embedded stores (SQLite + a local directory) and on PostgreSQL + S3
through the ``stores`` fixture of tests/reconciler/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.http_target import HttpTarget, serve_http_target
from vecron.backends.database import ExecutionStatus, TriggerSource
from vecron.backends.queue import MemoryQueue
from vecron.errors import TriggerRefused
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.runtime.steps.base import StepExecutor
from vecron.runtime.steps.http import HttpStepExecutor
from vecron.runtime.trigger import create_execution
from vecron.runtime.worker import Worker, enqueue
from vecron.stores import Stores

TWO_STEPS = """\
name: two-steps
variables: {{REGION: eu}}
steps:
  - id: create
    type: http
    config:
      method: POST
      url: "${{API}}/echo"
      body: {{id: 7, name: "Đức", region: "${{REGION}}"}}
  - id: read
    type: http
    config:
      url: "${{API}}/echo"
      query: {{id: "{{{{steps.create.response.body.body.id}}}}", at: "{{{{execution.date}}}}"}}
{extra}
"""


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served:
        yield served


@pytest.fixture
async def executors() -> AsyncIterator[dict[str, StepExecutor]]:
    http = HttpStepExecutor()
    try:
        yield {"http": http}
    finally:
        await http.close()


class Runtime:
    def __init__(self, stores: Stores, repo: Path, executors: dict[str, StepExecutor]) -> None:
        self.stores = stores
        self.repo = repo
        self.queue = MemoryQueue(ack_wait_seconds=30)
        self.worker = Worker(
            stores=stores, queue=self.queue, executors=executors, backoff=lambda attempt: 0.0
        )

    async def sync(self, files: dict[str, str]) -> None:
        for relative, text in files.items():
            path = self.repo / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        await sync_once(DirectorySource(self.repo), self.stores, SyncOptions(allow_empty=True))

    async def trigger(self, job: str, **kwargs: Any) -> str:
        record = await create_execution(
            self.stores.database, job, trigger_source=TriggerSource.MANUAL, **kwargs
        )
        await enqueue(self.queue, record)
        return record.execution_id

    async def work(self) -> None:
        """Process deliveries until the queue is empty (retries come back at once)."""
        while deliveries := await self.queue.fetch(batch=1, timeout_seconds=0.2):
            for delivery in deliveries:
                await self.worker.process(delivery)

    async def context(self, execution_id: str) -> dict[str, Any]:
        record = await self.stores.database.get_execution(execution_id)
        assert record.minio_context_path is not None
        loaded: dict[str, Any] = json.loads(
            await self.stores.objects.get(record.minio_context_path)
        )
        return loaded


@pytest.fixture
async def runtime(
    stores: Stores,
    tmp_path: Path,
    executors: dict[str, StepExecutor],
    target: HttpTarget,
) -> Runtime:
    result = Runtime(stores, tmp_path / "repo", executors)
    await result.sync({"variables.yaml": f"API: {target.url('').rstrip('/')}\n"})
    return result


async def test_steps_pass_data_by_reference_and_the_context_is_stored(runtime: Runtime) -> None:
    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra="")})
    execution_id = await runtime.trigger("two-steps")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.SUCCEEDED, record.error
    assert [s["status"] for s in record.step_statuses] == ["succeeded", "succeeded"]
    assert (
        record.minio_context_path == f"jobs/{record.job_id}/executions/{execution_id}/context.json"
    )
    context = await runtime.context(execution_id)
    created = context["steps"]["create"]["response"]["body"]["body"]
    assert created == {"id": 7, "name": "Đức", "region": "eu"}  # JSON types kept
    read = context["steps"]["read"]["output"]["body"]
    assert read["query"]["id"] == "7"  # the first response fed the second request
    assert read["query"]["at"] == context["execution"]["date"]
    assert context["job"]["name"] == "two-steps"
    assert context["execution"]["trigger_source"] == "manual"
    assert context["variables"]["REGION"] == "eu"


async def test_a_failure_keeps_the_context_up_to_it(runtime: Runtime) -> None:
    extra = """\
  - id: boom
    type: http
    config: {url: "${API}/status/503"}
  - id: never
    type: http
    config: {url: "${API}/echo"}
"""
    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra=extra)})
    execution_id = await runtime.trigger("two-steps")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.FAILED
    assert record.error is not None
    assert "step 'boom' failed" in record.error
    assert "503" in record.error
    context = await runtime.context(execution_id)
    assert sorted(context["steps"]) == ["boom", "create", "read"]
    assert context["steps"]["boom"]["status"] == "failed"
    assert context["steps"]["boom"]["output"]["status"] == 503  # the response is kept
    assert [s["id"] for s in record.step_statuses] == ["create", "read", "boom"]


async def test_when_skips_and_continue_on_error_goes_on(runtime: Runtime) -> None:
    extra = """\
  - id: only-for-eu-9
    type: http
    when: "steps.create.response.body.body.id == 9"
    config: {url: "${API}/echo"}
  - id: tolerated
    type: http
    continue_on_error: true
    config: {url: "${API}/status/500"}
  - id: last
    type: http
    when: "steps.tolerated.status == 'failed'"
    config: {url: "${API}/echo"}
"""
    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra=extra)})
    execution_id = await runtime.trigger("two-steps")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.SUCCEEDED
    statuses = {s["id"]: s["status"] for s in record.step_statuses}
    assert statuses == {
        "create": "succeeded",
        "read": "succeeded",
        "only-for-eu-9": "skipped",
        "tolerated": "failed",
        "last": "succeeded",
    }


async def test_a_missing_path_fails_the_step_naming_it(runtime: Runtime) -> None:
    job = TWO_STEPS.format(extra="").replace(
        "steps.create.response.body.body.id", "steps.create.response.body.body.nope"
    )
    await runtime.sync({"jobs/two.yaml": job})
    execution_id = await runtime.trigger("two-steps")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.FAILED
    assert record.error is not None
    assert "steps.create.response.body.body.nope" in record.error
    context = await runtime.context(execution_id)
    assert context["steps"]["create"]["status"] == "succeeded"


async def test_secrets_never_reach_the_context(runtime: Runtime) -> None:
    await runtime.stores.database.set_variable("API_TOKEN", "tok-9f8e7d", secret=True, source="cli")
    job = """\
name: secretive
steps:
  - id: call
    type: http
    config:
      url: "${API}/echo"
      headers: {X-Token: "${secret:API_TOKEN}", X-Env: "${secret:FROM_ENV}"}
      auth: {type: bearer, token: "${secret:API_TOKEN}"}
"""
    runtime.worker._environ = {"VECRON_SECRET_FROM_ENV": "env-5ecret"}
    await runtime.sync({"jobs/secretive.yaml": job})
    execution_id = await runtime.trigger("secretive")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.SUCCEEDED, record.error
    assert record.minio_context_path is not None
    stored = await runtime.stores.objects.get(record.minio_context_path)
    assert b"tok-9f8e7d" not in stored
    assert b"env-5ecret" not in stored
    echoed = json.loads(stored)["steps"]["call"]["output"]["body"]["headers"]
    assert echoed["x-token"] == "******"  # the server saw it; the context did not keep it


async def test_retries_then_the_final_status(runtime: Runtime) -> None:
    job = """\
name: flaky
max_retries: 2
steps:
  - id: call
    type: http
    config: {url: "${API}/status/502"}
"""
    await runtime.sync({"jobs/flaky.yaml": job})
    execution_id = await runtime.trigger("flaky")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.FAILED
    assert record.attempt == 3
    assert record.error is not None
    assert "502" in record.error


async def test_a_second_delivery_of_a_finished_execution_is_a_no_op(runtime: Runtime) -> None:
    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra="")})
    execution_id = await runtime.trigger("two-steps")
    await runtime.work()
    first = await runtime.stores.database.get_execution(execution_id)
    duplicate = MemoryQueue()
    await enqueue(duplicate, first)
    (delivery,) = await duplicate.fetch(timeout_seconds=1)
    await runtime.worker.process(delivery)
    assert await runtime.stores.database.get_execution(execution_id) == first
    assert await duplicate.pending() == 0  # acked, not redelivered


async def test_an_execution_runs_the_definition_it_was_created_with(runtime: Runtime) -> None:
    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra="")})
    execution_id = await runtime.trigger("two-steps")
    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra="").replace("id: 7", "id: 8")})
    await runtime.work()
    context = await runtime.context(execution_id)
    assert context["steps"]["read"]["output"]["body"]["query"]["id"] == "7"


async def test_step_and_job_timeouts(runtime: Runtime) -> None:
    job = """\
name: slow
timeout_seconds: {job_timeout}
steps:
  - id: wait
    type: http
    timeout_seconds: {step_timeout}
    config: {{url: "${{API}}/slow?seconds=5", timeout_seconds: 30}}
"""
    await runtime.sync({"jobs/slow.yaml": job.format(job_timeout=60, step_timeout=1)})
    execution_id = await runtime.trigger("slow")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.FAILED
    assert record.error is not None
    assert "longer than timeout_seconds (1 s)" in record.error
    await runtime.sync({"jobs/slow.yaml": job.format(job_timeout=1, step_timeout=30)})
    execution_id = await runtime.trigger("slow")
    await runtime.work()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.TIMED_OUT
    context = await runtime.context(execution_id)
    assert context["steps"]["wait"]["error"] == "interrupted"


async def test_triggers_are_refused_when_they_must_be(runtime: Runtime) -> None:
    await runtime.sync(
        {
            "jobs/two.yaml": TWO_STEPS.format(extra=""),
            "jobs/off.yaml": TWO_STEPS.format(extra="").replace("two-steps", "off")
            + "enabled: false\n",
        }
    )
    with pytest.raises(TriggerRefused, match="disabled"):
        await runtime.trigger("off")
    await runtime.trigger("two-steps")  # queued, not yet run
    with pytest.raises(TriggerRefused, match="already running"):
        await runtime.trigger("two-steps")
    with pytest.raises(TriggerRefused, match="manual runs"):
        await runtime.trigger("two-steps", manual_allowed=False)


async def test_a_retry_waits_out_its_backoff_even_for_a_sweeper_that_forgot_it(
    runtime: Runtime,
) -> None:
    """A retry is re-queued with a "not before": a sweeper (another process's, or this
    one's after its queue forgot the message) does not run it early."""
    from datetime import UTC, datetime, timedelta

    from vecron.runtime.up import Sweeper

    job = """\
name: flaky-later
max_retries: 1
steps:
  - {id: call, type: http, config: {url: "${API}/status/502"}}
"""
    await runtime.sync({"jobs/flaky.yaml": job})
    patient = Worker(
        stores=runtime.stores,
        queue=runtime.queue,
        executors=runtime.worker.executors,
        backoff=lambda attempt: 300.0,
    )
    execution_id = await runtime.trigger("flaky-later")
    (delivery,) = await runtime.queue.fetch(batch=1, timeout_seconds=1)
    await patient.process(delivery)
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.QUEUED
    assert record.attempt == 2
    assert record.leased_until is not None
    assert record.leased_until > datetime.now(UTC) + timedelta(seconds=250)

    other = MemoryQueue()
    sweeper = Sweeper(runtime.stores, other)
    assert await sweeper.sweep() == 0
    assert await other.pending() == 0
    await runtime.stores.database.update_execution(
        execution_id, leased_until=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert await sweeper.sweep() == 1
    await other.close()


async def test_trigger_wait_waits_for_a_run_another_worker_claimed(runtime: Runtime) -> None:
    """`vecron trigger --wait` beside a running `vecron up`: when the other worker wins
    the claim, the command waits for that run's end instead of reporting "running"."""
    import asyncio

    from vecron.cli.run_commands import wait_until_final

    await runtime.sync({"jobs/two.yaml": TWO_STEPS.format(extra="")})
    execution_id = await runtime.trigger("two-steps")
    claimed = await runtime.stores.database.claim_execution(
        execution_id, worker_id="the-other-worker", lease_seconds=60
    )
    assert claimed is not None

    async def other_worker_finishes() -> None:
        await asyncio.sleep(0.5)
        await runtime.stores.database.finish_execution(
            execution_id, worker_id="the-other-worker", status="succeeded", error=None
        )

    finishing = asyncio.create_task(other_worker_finishes())
    record = await wait_until_final(runtime.stores.database, execution_id, poll_seconds=0.05)
    await finishing
    assert record.status == ExecutionStatus.SUCCEEDED


async def test_a_retry_waits_for_an_open_circuit_breaker(runtime: Runtime) -> None:
    """A step refused by an open breaker is retried after the breaker's cool-down, not
    after the (shorter) backoff: retries during the cool-down would be wasted."""
    from datetime import UTC, datetime, timedelta

    from vecron.backends.breaker import MemoryCircuitBreaker
    from vecron.runtime.steps import default_executors

    job = """\
name: guarded
max_retries: 1
steps:
  - {id: call, type: http, config: {url: "http://127.0.0.1:9/down"}}
"""
    await runtime.sync({"jobs/guarded.yaml": job})
    breaker = MemoryCircuitBreaker(failure_threshold=1, cooldown_seconds=120)
    await breaker.record("http://127.0.0.1:9", ok=False)  # open: one failure is the limit
    executors = default_executors(breaker=breaker)
    patient = Worker(
        stores=runtime.stores,
        queue=runtime.queue,
        executors=executors,
        backoff=lambda attempt: 1.0,
    )
    try:
        execution_id = await runtime.trigger("guarded")
        (delivery,) = await runtime.queue.fetch(batch=1, timeout_seconds=1)
        await patient.process(delivery)
    finally:
        for executor in executors.values():
            await executor.close()
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.QUEUED
    assert record.error is not None
    assert "circuit breaker" in record.error
    assert record.leased_until is not None
    assert record.leased_until > datetime.now(UTC) + timedelta(seconds=100)
