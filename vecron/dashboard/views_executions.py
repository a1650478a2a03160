"""The executions pages: the last 30 days filtered, one execution, its output files."""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from vecron import paths
from vecron.backends.database import ExecutionRecord, ExecutionStatus, TriggerSource
from vecron.dashboard.actions import call_api
from vecron.dashboard.present import WINDOW, mask_context
from vecron.dashboard.render import PREFIX, htmx
from vecron.dashboard.web import Visit, redirect
from vecron.errors import ObjectNotFound
from vecron.spec import schedules
from vecron.webhook import api_executions
from vecron.webhook.api_views import execution_detail
from vecron.webhook.tokens import Permission

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    job: str
    status: str
    trigger_source: str
    page: int

    def query(self, **changes: Any) -> str:
        values = {
            "job": self.job,
            "status": self.status,
            "trigger_source": self.trigger_source,
            "page": self.page,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", 0, 1)})


def _filters(visit: Visit) -> Filters:
    query = visit.request.query_params
    status = query.get("status", "")
    source = query.get("trigger_source", "")
    page = query.get("page", "1")
    return Filters(
        job=query.get("job", "").strip(),
        status=status if status in set(ExecutionStatus) else "",
        trigger_source=source if source in set(TriggerSource) else "",
        page=int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1,
    )


async def executions_page(visit: Visit) -> Response:
    filters = _filters(visit)
    since = datetime.now(UTC) - WINDOW
    rows = await visit.state.stores.database.list_executions(
        job_name=filters.job or None,
        status=filters.status or None,
        trigger_source=filters.trigger_source or None,
        since=since,
        limit=PAGE_SIZE + 1,
        offset=(filters.page - 1) * PAGE_SIZE,
    )
    jobs = sorted(job.name for job in await visit.state.stores.database.list_jobs())
    template = "_executions_table.html" if htmx(visit.request) else "executions.html"
    return visit.page(
        template,
        nav="executions",
        executions=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        filters=filters,
        job_names=jobs,
        statuses=[s.value for s in ExecutionStatus],
        sources=[s.value for s in TriggerSource],
    )


async def execution_page(visit: Visit) -> Response:
    state = visit.state
    record = await state.stores.database.get_execution(visit.param("execution_id"))
    context, note = await _context(visit, record)
    detail = execution_detail(record, None, note)
    tz = schedules.zone(schedules.DEFAULT_TIMEZONE)
    with contextlib.suppress(Exception):
        job = await state.stores.database.get_job_by_id(record.job_id)
        definition = await state.definition(job)
        if definition is not None and definition.schedule is not None:
            tz = schedules.zone(definition.schedule.timezone)
    total = sum(step["duration_ms"] or 0 for step in detail["steps"]) or 1
    template = "_execution_body.html" if htmx(visit.request) else "execution.html"
    return visit.page(
        template,
        nav="executions",
        record=record,
        detail=detail,
        tz=tz,
        total_ms=total,
        context_text=None if context is None else json.dumps(context, indent=2, ensure_ascii=False),
        context_sections=[] if context is None else list(context.items()),
        files=await _output_files(visit, record),
        can_retry=visit.viewer.can(Permission.JOB_EXECUTE),
    )


async def _context(
    visit: Visit, record: ExecutionRecord
) -> tuple[dict[str, Any] | None, str | None]:
    if record.minio_context_path is None:
        return None, "no context yet: the run has not started a step"
    try:
        loaded = json.loads(await visit.state.stores.objects.get(record.minio_context_path))
    except ObjectNotFound:
        return None, f"the context is missing from the object store ({record.minio_context_path})"
    except ValueError:
        return None, f"the context at {record.minio_context_path} is not valid JSON"
    if not isinstance(loaded, dict):
        return None, "the context is not a JSON object"
    stored = await visit.state.stored_secrets()
    masked: dict[str, Any] = mask_context(loaded, sorted(stored.values(), key=len, reverse=True))
    return masked, None


def _output_prefix(record: ExecutionRecord) -> str:
    return paths.execution_prefix(record.job_id, record.execution_id) + "output/"


async def _output_files(visit: Visit, record: ExecutionRecord) -> list[dict[str, Any]]:
    prefix = _output_prefix(record)
    files = []
    async for info in visit.state.stores.objects.list(prefix):
        files.append({"name": info.path[len(prefix) :], "size": info.size})
        if len(files) >= 500:
            break
    return files


async def output_file(visit: Visit) -> Response:
    """One file a run wrote, as a download (streamed through a temporary file)."""
    record = await visit.state.stores.database.get_execution(visit.param("execution_id"))
    relative = visit.param("path")
    try:
        path = paths.output_file_path(record.job_id, record.execution_id, relative)
    except ValueError:
        return visit.page("error.html", status_code=404, title="No such file", message=relative)
    descriptor, temporary = tempfile.mkstemp(prefix="vecron-dashboard-")
    os.close(descriptor)
    target = Path(temporary)
    try:
        await visit.state.stores.objects.get_file(path, target)
    except (ObjectNotFound, ValueError):
        target.unlink(missing_ok=True)
        return visit.page("error.html", status_code=404, title="No such file", message=relative)
    media_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
    return FileResponse(
        target,
        media_type=media_type,
        filename=relative.rsplit("/", 1)[-1],
        background=BackgroundTask(target.unlink, missing_ok=True),
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )


async def retry_execution(visit: Visit) -> Response:
    """A new run of a failed execution, through the API's own retry."""
    status, answer = await call_api(
        api_executions.retry_execution, visit.request, visit.state, visit.viewer
    )
    if status >= 400:
        message = str(answer.get("message"))
        return visit.page("error.html", status_code=status, title="Not retried", message=message)
    return redirect(f"{PREFIX}/executions/{answer['execution_id']}")
