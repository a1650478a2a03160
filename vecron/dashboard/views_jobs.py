"""The jobs pages: the list, one job, and its actions (run now, enable, disable)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.responses import Response

from vecron.dashboard.actions import Handler, call_api, run_body
from vecron.dashboard.present import job_view, job_views
from vecron.dashboard.render import PREFIX, htmx
from vecron.dashboard.web import Visit, redirect
from vecron.webhook import api_jobs
from vecron.webhook.tokens import Permission


async def jobs_page(visit: Visit) -> Response:
    jobs = await visit.state.stores.database.list_jobs()
    views = await job_views(visit.state, jobs)
    template = "_jobs_table.html" if htmx(visit.request) else "jobs.html"
    return visit.page(
        template,
        nav="jobs",
        jobs=views,
        run_key=secrets.token_urlsafe(12),
        Permission=Permission,
    )


async def job_page(visit: Visit, *, error: str | None = None, status_code: int = 200) -> Response:
    job = await visit.state.stores.database.get_job(visit.param("name"))
    view = await job_view(visit.state, job, now=datetime.now(UTC), recent=10)
    template = "_job_body.html" if htmx(visit.request) and error is None else "job.html"
    return visit.page(
        template,
        status_code=status_code,
        nav="jobs",
        view=view,
        error=error,
        variables=visit.form.get("variables", ""),
        run_key=secrets.token_urlsafe(12),
        Permission=Permission,
    )


async def run_job(visit: Visit) -> Response:
    body, problem = run_body(visit.form.get("variables", ""))
    if problem is not None:
        return await job_page(visit, error=problem, status_code=400)
    status, answer = await call_api(
        api_jobs.run_job,
        visit.request,
        visit.state,
        visit.viewer,
        body=body,
        idempotency_key=visit.form.get("run_key") or None,
    )
    if status >= 400:
        return await job_page(visit, error=str(answer.get("message")), status_code=status)
    return redirect(f"{PREFIX}/executions/{quote(str(answer['execution_id']))}")


async def enable_job(visit: Visit) -> Response:
    return await _switch(visit, api_jobs.enable_job)


async def disable_job(visit: Visit) -> Response:
    return await _switch(visit, api_jobs.disable_job)


async def _switch(visit: Visit, handler: Handler) -> Response:
    status, answer = await call_api(handler, visit.request, visit.state, visit.viewer)
    if status >= 400:
        return await job_page(visit, error=str(answer.get("message")), status_code=status)
    back = visit.form.get("back", "")
    if back == "list":
        return redirect(f"{PREFIX}/")
    return redirect(f"{PREFIX}/jobs/{quote(visit.param('name'))}")
