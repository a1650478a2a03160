"""The manual-trigger and read API under ``/api/v1`` (bearer tokens, roles), and
``/openapi.json``, which describes every route of the server.

====================================  =================  ==============================
route                                 permission         does
====================================  =================  ==============================
``GET /jobs``                         ``job:read``       jobs, next and last run, rate
``GET /jobs/{name}``                  ``job:read``       one job (webhook URL with
                                                         ``job:write``)
``POST /jobs/{name}/runs``            ``job:execute``    a manual run (202)
``POST /jobs/{name}/enable``          ``job:write``      enable (kept by later syncs)
``POST /jobs/{name}/disable``         ``job:write``      disable (kept by later syncs)
``GET /executions``                   ``execution:read`` filtered, paginated history
``GET /executions/{id}``              ``execution:read`` steps, error, context
``POST /executions/{id}/retry``       ``job:execute``    a new run of a failed one (202)
``POST /sync``                        ``job:write``      sync now (or a signed push)
====================================  =================  ==============================

Every call is authenticated (:mod:`.api_auth`), checked against its permission, and
logged on ``vecron.api`` with the token's name (``extra={"token": name}``), never the
token. Every refusal is ``{"error": CODE, "message": TEXT}`` (:mod:`.api_common`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vecron.webhook import api_executions, api_jobs, openapi
from vecron.webhook.api_auth import TokenAuthenticator, forbidden
from vecron.webhook.api_common import ApiError, Call, Caller, error_for, log
from vecron.webhook.api_sync import SyncRunner
from vecron.webhook.responses import json_response
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission

PREFIX = "/api/v1"

Handler = Callable[[Call], Awaitable[Response]]

_NOBODY = Caller(name="(unauthenticated)", role=None, permissions=frozenset())


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One API route: its method, path under :data:`PREFIX`, permission and handler.

    ``signed_sync`` lets a push webhook signed with the sync secret stand in for a token.
    """

    method: str
    path: str
    permission: Permission
    handler: Handler
    signed_sync: bool = False


def endpoints(sync: SyncRunner) -> list[Endpoint]:
    """Every route of ``/api/v1`` (``openapi.py`` documents the same list)."""
    read, write, execute = Permission.JOB_READ, Permission.JOB_WRITE, Permission.JOB_EXECUTE
    history = Permission.EXECUTION_READ
    return [
        Endpoint(method="GET", path="/jobs", permission=read, handler=api_jobs.list_jobs),
        Endpoint(method="GET", path="/jobs/{name}", permission=read, handler=api_jobs.get_job),
        Endpoint(
            method="POST", path="/jobs/{name}/runs", permission=execute, handler=api_jobs.run_job
        ),
        Endpoint(
            method="POST",
            path="/jobs/{name}/enable",
            permission=write,
            handler=api_jobs.enable_job,
        ),
        Endpoint(
            method="POST",
            path="/jobs/{name}/disable",
            permission=write,
            handler=api_jobs.disable_job,
        ),
        Endpoint(
            method="GET",
            path="/executions",
            permission=history,
            handler=api_executions.list_executions,
        ),
        Endpoint(
            method="GET",
            path="/executions/{execution_id}",
            permission=history,
            handler=api_executions.get_execution,
        ),
        Endpoint(
            method="POST",
            path="/executions/{execution_id}/retry",
            permission=execute,
            handler=api_executions.retry_execution,
        ),
        Endpoint(
            method="POST", path="/sync", permission=write, handler=sync.handle, signed_sync=True
        ),
    ]


class _Api:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.tokens = TokenAuthenticator(state)
        self.sync = SyncRunner(state)

    def route(self, endpoint: Endpoint) -> Route:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            call = Call(request=request, state=self.state, caller=_NOBODY)
            try:
                call.caller = await self._caller(call, endpoint)
                if not call.caller.can(endpoint.permission):
                    raise forbidden(call.caller, endpoint.permission)
                response = await endpoint.handler(call)
            except Exception as exc:
                response = error_for(exc, request)
            log.info(
                "%s %s %d (%.1f ms)",
                request.method,
                request.url.path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                extra={"token": None if call.caller is _NOBODY else call.caller.name},
            )
            return response

        return Route(PREFIX + endpoint.path, handle, methods=[endpoint.method])

    async def _caller(self, call: Call, endpoint: Endpoint) -> Caller:
        if endpoint.signed_sync and self.sync.signed(call):
            return await self.sync.signed_caller(call)
        return await self.tokens.caller(call.request)


def routes(state: ServerState) -> list[BaseRoute]:
    """The routes of ``/api/v1``, and ``GET /openapi.json``."""
    api = _Api(state)
    document = openapi.document()

    async def openapi_json(request: Request) -> Response:
        return json_response(document)

    return [
        *(api.route(endpoint) for endpoint in endpoints(api.sync)),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]


__all__ = ["PREFIX", "ApiError", "Endpoint", "endpoints", "routes"]
