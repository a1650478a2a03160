"""The dashboard's routes under ``/ui``, mounted by :func:`vecron.webhook.app.create_app`.

====================================  ==================  ===============================
route                                 permission          shows or does
====================================  ==================  ===============================
``GET /ui/login`` · ``POST``          (a valid token)     log in with an API token
``POST /ui/logout``                                       log out
``GET /ui/``                          ``job:read``        jobs
``GET /ui/jobs/{name}``               ``job:read``        one job, its latest runs
``POST /ui/jobs/{name}/run``          ``job:execute``     run now (optional variables)
``POST /ui/jobs/{name}/enable``       ``job:write``       enable · ``/disable`` disable
``GET /ui/executions``                ``execution:read``  last 30 days, filtered
``GET /ui/executions/{id}``           ``execution:read``  steps, Job Context, files
``GET /ui/executions/{id}/files/…``   ``execution:read``  an output file
``POST /ui/executions/{id}/retry``    ``job:execute``     retry a failed run
``GET /ui/sync`` · ``POST``           ``job:read`` ·      sync status, pending plan ·
                                      ``job:write``       sync now
``GET /ui/events``                    ``execution:read``  Server-Sent Events
``GET /ui/builder`` · ``POST …``      (any role)          the job builder
====================================  ==================  ===============================
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from vecron.dashboard import views_builder, views_executions, views_jobs, views_sync
from vecron.dashboard.live import LiveFeed, stream
from vecron.dashboard.render import PREFIX, STATIC, page
from vecron.dashboard.session import Sessions, read_form
from vecron.dashboard.web import Dashboard, PageFunction, Visit, handler, redirect
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission


def _next(target: str | None) -> str:
    """Only a path of this dashboard: never an open redirect."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//"):
        return target
    return f"{PREFIX}/"


def routes(state: ServerState) -> list[BaseRoute]:
    """The dashboard's routes over the server's state."""
    dashboard = Dashboard(
        state=state, sessions=Sessions(state), feed=LiveFeed(state.stores.database)
    )
    sessions = dashboard.sessions

    async def login_page(request: Request) -> Response:
        return page(request, "login.html", None, next=_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        form = await read_form(request)
        response, error = await sessions.login(
            form.get("token", ""), secure=request.url.scheme == "https"
        )
        target = _next(form.get("next"))
        if response is None:
            return page(request, "login.html", None, status_code=401, error=error, next=target)
        response.headers["Location"] = target
        return response

    async def logout(request: Request) -> Response:
        return sessions.logout(redirect(f"{PREFIX}/login"))

    async def events(visit: Visit) -> Response:
        return StreamingResponse(
            stream(visit.request, dashboard.feed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def at(
        path: str,
        function: PageFunction,
        permission: Permission | None = None,
        methods: tuple[str, ...] = ("GET",),
    ) -> Route:
        endpoint = handler(dashboard, function, permission=permission)
        return Route(path, endpoint, methods=list(methods))

    read, history = Permission.JOB_READ, Permission.EXECUTION_READ
    execute, write = Permission.JOB_EXECUTE, Permission.JOB_WRITE
    post = ("POST",)
    inner: list[BaseRoute] = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        at("/", views_jobs.jobs_page, read),
        at("/jobs/{name}", views_jobs.job_page, read),
        at("/jobs/{name}/run", views_jobs.run_job, execute, post),
        at("/jobs/{name}/enable", views_jobs.enable_job, write, post),
        at("/jobs/{name}/disable", views_jobs.disable_job, write, post),
        at("/executions", views_executions.executions_page, history),
        at("/executions/{execution_id}", views_executions.execution_page, history),
        at("/executions/{execution_id}/files/{path:path}", views_executions.output_file, history),
        at("/executions/{execution_id}/retry", views_executions.retry_execution, execute, post),
        at("/sync", views_sync.sync_page, read),
        at("/sync", views_sync.sync_now, write, post),
        at("/events", events, history),
        at("/builder", views_builder.builder_page),
        at("/builder", views_builder.builder_post, methods=post),
        at("/builder/preview", views_builder.builder_preview, methods=post),
        at("/builder/import", views_builder.builder_import, methods=post),
    ]

    return [Mount(PREFIX, routes=inner)]
