"""The HTTP server of a vecron process: webhooks, the API, the dashboard, health,
readiness, metrics.

:func:`create_app` puts together the webhook receiver (:mod:`.receiver`), the API under
``/api/v1`` (:mod:`.api`) and the operational routes here, over one
:class:`~vecron.webhook.state.ServerState`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vecron import __version__
from vecron.backends.queue import Queue
from vecron.backends.ratelimit import MemoryRateLimiter, RateLimiter
from vecron.dashboard.routes import routes as dashboard_routes
from vecron.runtime.metrics import Metrics
from vecron.stores import Stores
from vecron.webhook import api, receiver
from vecron.webhook.responses import json_response
from vecron.webhook.state import DEFAULT_BODY_LIMIT, ServerState


def create_app(
    *,
    stores: Stores,
    queue: Queue,
    metrics: Metrics,
    rate_limiter: RateLimiter | None = None,
    body_limit: int = DEFAULT_BODY_LIMIT,
) -> Starlette:
    """The Starlette app over running stores and a rate limiter (in-process when none is
    given); the caller owns their life cycle."""
    limiter = rate_limiter or MemoryRateLimiter()
    state = ServerState(
        stores=stores, queue=queue, metrics=metrics, rate_limiter=limiter, body_limit=body_limit
    )

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await stores.database.next_due_at()
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; say which backend
            checks["database"] = f"{type(exc).__name__}: {exc}"
        try:
            await stores.objects.exists("healthz")
            checks["object_store"] = "ok"
        except Exception as exc:
            checks["object_store"] = f"{type(exc).__name__}: {exc}"
        try:
            await queue.pending()
            checks["queue"] = "ok"
        except Exception as exc:
            checks["queue"] = f"{type(exc).__name__}: {exc}"
        try:
            await limiter.ping()
            checks["rate_limiter"] = "ok"
        except Exception as exc:
            checks["rate_limiter"] = f"{type(exc).__name__}: {exc}"
        ready = all(value == "ok" for value in checks.values())
        return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        metrics.queue_size.set(await queue.pending())
        await metrics.refresh()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *receiver.routes(state),
            *api.routes(state),
            *dashboard_routes(state),
        ],
    )
    app.state.vecron = state
    return app
