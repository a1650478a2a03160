"""Done when: a job with secrets in every sensitive field exports to files and to a Git
commit with none of them, and imports back into an identical job that runs.

The HTTP steps run against a local server that answers 401 to a wrong credential, so
the imported job only succeeds when every restored secret reaches the server.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reconciler.gitrepo import GitRepo
from tests.runtime.http_target import HttpTarget
from tests.transfer.planted import CUSTOM_PATTERN, JOB_NAME, leaks, planted_job, sync_jobs
from tests.transfer.test_gitexport import _all_git_bytes
from tests.transfer.test_redact import recovered_secrets
from vecron.backends.database import ExecutionStatus, TriggerSource
from vecron.backends.queue import MemoryQueue
from vecron.runtime.steps.http import HttpStepExecutor
from vecron.runtime.trigger import create_execution
from vecron.runtime.worker import Worker, enqueue
from vecron.stores import Stores
from vecron.transfer.export import ExportMetadata, ExportTarget, collect, write_export
from vecron.transfer.formats import read_inputs
from vecron.transfer.gitexport import export_to_git
from vecron.transfer.importer import import_jobs, validate
from vecron.transfer.redact import compile_pattern

HTTP_STEPS = ["basic", "bearer", "header", "variable", "userinfo", "oauth", "echo"]
SKIPPED = ["warehouse", "legacy", "fetch", "fetch_key"]


@pytest.fixture
async def http() -> AsyncIterator[HttpStepExecutor]:
    executor = HttpStepExecutor()
    try:
        yield executor
    finally:
        await executor.close()


async def _run(stores: Stores, http: HttpStepExecutor, job: str) -> str:
    queue = MemoryQueue(ack_wait_seconds=30)
    worker = Worker(stores=stores, queue=queue, executors={"http": http}, backoff=lambda _: 0.0)
    record = await create_execution(stores.database, job, trigger_source=TriggerSource.MANUAL)
    await enqueue(queue, record)
    while deliveries := await queue.fetch(batch=1, timeout_seconds=0.2):
        for delivery in deliveries:
            await worker.process(delivery)
    return record.execution_id


async def test_export_to_files_and_git_then_import_gives_a_job_that_runs(
    stores: Stores, tmp_path: Path, target: HttpTarget, http: HttpStepExecutor
) -> None:
    planted = planted_job(target)
    await sync_jobs(stores, tmp_path / "live", {"jobs/partner.json": planted.text})
    original = await stores.database.get_job(JOB_NAME)
    baseline = await _run(stores, http, JOB_NAME)
    assert (await stores.database.get_execution(baseline)).status == ExecutionStatus.SUCCEEDED

    # Out: files (a ZIP here) and a Git commit, none holding a secret.
    jobs = await collect(stores, key_pattern=compile_pattern(CUSTOM_PATTERN))
    [bundle] = write_export(jobs, ExportTarget(out=tmp_path / "out.zip"), ExportMetadata.now())
    with zipfile.ZipFile(bundle) as archive:
        assert all(leaks(archive.read(n), planted) == [] for n in archive.namelist())
    assert leaks(bundle.read_bytes(), planted) == []
    origin = GitRepo(tmp_path / "origin")
    origin.write("README.md", "jobs\n")
    origin.commit("init")
    result = export_to_git(jobs, repo=str(origin.path), meta=ExportMetadata.now())
    assert result.commit is not None
    assert leaks(_all_git_bytes(origin), planted) == []

    # In: the secrets given, a new job that is the original once they are filled in.
    definition = json.loads(await stores.objects.get(original.minio_definition_path))
    values = recovered_secrets(definition, jobs[0].definition)
    assert len(values) == len(jobs[0].placeholders) == len(planted.secrets)
    candidates = validate(read_inputs([bundle]))
    [outcome] = await import_jobs(candidates, stores, secrets=values)
    assert outcome.created
    assert outcome.name == f"{JOB_NAME}-copy-1"

    execution_id = await _run(stores, http, outcome.name)
    record = await stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.SUCCEEDED, record.error
    statuses = {s["id"]: s["status"] for s in record.step_statuses}
    assert statuses == {
        **dict.fromkeys(HTTP_STEPS, "succeeded"),
        **dict.fromkeys(SKIPPED, "skipped"),
    }
    assert record.minio_context_path is not None
    context = await stores.objects.get(record.minio_context_path)
    assert leaks(context, planted) == []  # the run scrubbed what it resolved
    echoed = json.loads(context)["steps"]["echo"]["output"]["body"]
    assert echoed["query"]["api_key"] == "******"  # a secret arrived (not the placeholder)
    assert echoed["body"] == {"password": "******", "account_pin": "******"}
