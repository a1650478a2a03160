"""A real server for the ``/api/v1`` tests: synced jobs, one token per role, httpx.

:func:`open_api` syncs :data:`JOBS` from a job repository folder into the stores (the
``stores`` fixture: SQLite + a folder, PostgreSQL + S3), makes a token for every
role, and serves :func:`vecron.webhook.app.create_app` over them with uvicorn on the
test's loop. The server's settings name that folder as the repository and
:data:`SYNC_SECRET` as the sync secret, so ``POST /api/v1/sync`` works.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.webhook.serving import served
from vecron.backends.database import (
    ExecutionRecord,
    ExecutionStatus,
    TokenRecord,
    TriggerSource,
)
from vecron.backends.queue import MemoryQueue
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.runtime.metrics import Metrics
from vecron.stores import Stores
from vecron.webhook.app import create_app
from vecron.webhook.tokens import Role, hash_token, new_token

SYNC_SECRET = "It's a Secret to Everybody"
UNREACHABLE = "http://127.0.0.1:9"

JOBS = {
    "report.yaml": """\
name: report
description: Daily report
labels: {team: data}
schedule: {type: cron, expression: "0 0 2 * * ?", timezone: Asia/Ho_Chi_Minh}
allow_concurrent: true
variables: {REGION: eu, LIMIT: 10}
steps:
  - id: fetch
    type: http
    config: {url: "${API}/echo", query: {region: "${REGION}", limit: "${LIMIT}"}}
""",
    "serial.yaml": """\
name: serial
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
    "no-manual.yaml": """\
name: no-manual
triggers: {manual: false}
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
    "file-off.yaml": """\
name: file-off
enabled: false
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
    "hooked.yaml": """\
name: hooked
allow_concurrent: true
triggers:
  webhook: {rate_limit: 100}
steps:
  - {id: s, type: http, config: {url: "${API}/echo"}}
""",
}


@dataclass
class Api:
    """The served app and what the tests need around it."""

    stores: Stores
    queue: MemoryQueue
    url: str
    client: httpx.AsyncClient
    tokens: dict[str, str]
    repo: Path
    app: Starlette

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "admin",
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """``method`` ``/api/v1`` + ``path`` with the token of ``role`` (none for None)."""
        headers = dict(kwargs.pop("headers", None) or {})
        secret = token if token is not None else (self.tokens[role] if role else None)
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        return await self.client.request(
            method, f"{self.url}/api/v1{path}", headers=headers, **kwargs
        )

    async def sync_files(self, files: Mapping[str, str | None], *, prune: bool = True) -> None:
        """Write (or with None, delete) job files under ``jobs/`` and sync them."""
        write_files(self.repo, files)
        options = SyncOptions(allow_empty=True, prune=prune)
        await sync_once(DirectorySource(self.repo), self.stores, options)

    async def add_execution(
        self,
        job_name: str,
        *,
        status: ExecutionStatus = ExecutionStatus.SUCCEEDED,
        trigger_source: TriggerSource = TriggerSource.MANUAL,
        queued_at: datetime | None = None,
        trigger_data: Mapping[str, Any] | None = None,
        scheduled_at: datetime | None = None,
        error: str | None = None,
        steps: Sequence[Mapping[str, Any]] | None = None,
        context_path: str | None = None,
    ) -> ExecutionRecord:
        """An execution as the runtime leaves it, written straight to the database."""
        database = self.stores.database
        job = await database.get_job(job_name)
        assert job.content_hash is not None
        fields: dict[str, Any] = {} if queued_at is None else {"queued_at": queued_at}
        record = await database.create_execution(
            ExecutionRecord(
                job_id=job.job_id,
                job_name=job.name,
                definition_hash=job.content_hash,
                trigger_source=trigger_source,
                trigger_data=dict(trigger_data or {}),
                scheduled_at=scheduled_at,
                **fields,
            )
        )
        if status == ExecutionStatus.RUNNING:
            await database.update_execution(record.execution_id, status=status)
        elif status != ExecutionStatus.QUEUED:
            await database.finish_execution(
                record.execution_id,
                worker_id=None,
                status=status,
                error=error,
                step_statuses=list(steps or []),
                context_path=context_path,
            )
        return await database.get_execution(record.execution_id)


def write_files(repo: Path, files: Mapping[str, str | None]) -> None:
    for name, text in files.items():
        path = repo / "jobs" / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


@contextlib.asynccontextmanager
async def open_api(
    stores: Stores, repo: Path, *, api_url: str = UNREACHABLE, repo_configured: bool = True
) -> AsyncIterator[Api]:
    """Sync :data:`JOBS` into ``stores`` from ``repo`` and serve the app over them."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "variables.yaml").write_text(f"API: {api_url}\n", encoding="utf-8")
    write_files(repo, JOBS)
    await sync_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
    tokens: dict[str, str] = {}
    for role in Role:
        tokens[role.value] = new_token()
        await stores.database.create_token(
            TokenRecord(
                name=f"{role.value}-token",
                role=role.value,
                token_hash=hash_token(tokens[role.value]),
            )
        )
    settings = stores.settings
    if repo_configured:
        settings = dataclasses.replace(settings, repo=str(repo), sync_secret=SYNC_SECRET)
    served_stores = dataclasses.replace(stores, settings=settings)
    queue = MemoryQueue(ack_wait_seconds=30)
    app = create_app(stores=served_stores, queue=queue, metrics=Metrics())
    try:
        async with served(app) as url, httpx.AsyncClient(timeout=30) as client:
            yield Api(served_stores, queue, url, client, tokens, repo, app)
    finally:
        await queue.close()


@pytest.fixture
async def api(stores: Stores, tmp_path: Path) -> AsyncIterator[Api]:
    async with open_api(stores, tmp_path / "repo") as opened:
        yield opened


async def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error answer: its status, JSON body and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code, body
    assert body["message"]
    return body
