"""The HTTP server of a vecron process: health, readiness and metrics for now.

The webhook receiver and the manual-trigger API (the webhooks issue) join these routes.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vecron import __version__
from vecron.backends.queue import Queue
from vecron.runtime.metrics import Metrics
from vecron.stores import Stores


def create_app(*, stores: Stores, queue: Queue, metrics: Metrics) -> Starlette:
    """The Starlette app over running stores; the caller owns their life cycle."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

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
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        metrics.queue_size.set(await queue.pending())
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )
