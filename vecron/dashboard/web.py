"""The glue of every dashboard handler: the session, CSRF, permissions and errors.

:func:`handler` wraps a page function: it finds the :class:`~.session.Viewer` (or
redirects to the login), checks the CSRF token of a ``POST`` and the permission the
route needs, and turns refusals and missing jobs or executions into pages, in one
place, as :func:`vecron.webhook.api_common.error_for` does for the API.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vecron.dashboard.live import LiveFeed
from vecron.dashboard.render import PREFIX, htmx, page
from vecron.dashboard.session import (
    Forbidden,
    NotLoggedIn,
    Sessions,
    Viewer,
    check_csrf,
    read_form,
    require,
)
from vecron.errors import BackendUnavailable, ExecutionNotFound, JobNotFound
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission

log = logging.getLogger("vecron.dashboard")


@dataclass(eq=False, kw_only=True)
class Dashboard:
    """What the dashboard's handlers share: the server's state, sessions, the live feed."""

    state: ServerState
    sessions: Sessions
    feed: LiveFeed


@dataclass(eq=False, kw_only=True)
class Visit:
    """One request to a page, as its handler sees it."""

    request: Request
    viewer: Viewer
    form: dict[str, str]
    dashboard: Dashboard

    @property
    def state(self) -> ServerState:
        return self.dashboard.state

    def param(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def page(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        return page(self.request, template, self.viewer, status_code=status_code, **context)


PageFunction = Callable[[Visit], Awaitable[Response]]


def redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303)


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{PREFIX}/login?next={quote(target, safe='')}"
    if htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return redirect(location)


def handler(
    dashboard: Dashboard, function: PageFunction, *, permission: Permission | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """``function`` as a Starlette endpoint behind the login (see the module)."""

    async def endpoint(request: Request) -> Response:
        try:
            viewer = await dashboard.sessions.viewer(request)
        except NotLoggedIn:
            return login_redirect(request)
        try:
            form: dict[str, str] = {}
            if request.method == "POST":
                form = await read_form(request)
                check_csrf(request, viewer, form)
            if permission is not None:
                require(viewer, permission)
            return await function(
                Visit(request=request, viewer=viewer, form=form, dashboard=dashboard)
            )
        except Forbidden as exc:
            return _error(request, viewer, 403, "Not allowed", exc.message)
        except JobNotFound as exc:
            return _error(request, viewer, 404, "No such job", f"there is no job named {exc.job!r}")
        except ExecutionNotFound as exc:
            message = f"there is no execution {exc.execution_id!r}"
            return _error(request, viewer, 404, "No such execution", message)
        except BackendUnavailable as exc:
            log.error("%s %s: %s", request.method, request.url.path, exc)
            message = "a backend is unavailable; the server log says which"
            return _error(request, viewer, 503, "Unavailable", message)

    return endpoint


def _error(request: Request, viewer: Viewer, status: int, title: str, message: str) -> Response:
    return page(request, "error.html", viewer, status_code=status, title=title, message=message)
