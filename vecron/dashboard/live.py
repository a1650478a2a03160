"""Live updates: Server-Sent Events as executions start and finish.

One :class:`LiveFeed` per server polls the database while at least one page listens,
so it sees runs that any process started or finished (a worker elsewhere, ``vecron
trigger`` in another terminal), and fans each change out to every open stream. A
stream (:func:`stream`) sends ``event: executions`` with the changed executions as
JSON; pages refresh their fragments on it (htmx's ``sse:executions`` trigger).

A stream ends when the client goes away (Starlette cancels it, or a write fails on
the next heartbeat), when :meth:`LiveFeed.close` is called, after
:data:`STREAM_SECONDS` (the browser reconnects by itself), and when the server shuts
down: uvicorn's graceful shutdown waits for every response to finish, and an endless
stream would hold it forever. uvicorn tells a connection to stop by turning off its
keep-alive, which :func:`_server_closing` watches (other servers fall back on the
stream's lifetime).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from vecron.backends.database import ACTIVE_STATUSES, Database, ExecutionRecord

log = logging.getLogger("vecron.dashboard")

POLL_SECONDS = 1.0
"""How often the feed reads the database while someone listens."""
TICK_SECONDS = 0.25
"""How often a stream checks for a gone client or a closing server."""
HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
STREAM_SECONDS = 300.0
"""The longest one stream lasts before the browser is told to reconnect."""
RETRY_MS = 2000
"""How long a browser waits before it reconnects a closed stream."""
WATCHED = 100
"""The newest executions compared on every poll (besides every active one)."""

Fingerprint = dict[str, tuple[str, str | None]]


class LiveFeed:
    """Polls executions while anyone listens and hands each change to every listener."""

    def __init__(self, database: Database, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.database = database
        self.poll_seconds = poll_seconds
        self.closed = asyncio.Event()
        self._listeners: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        self._listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="dashboard-live-feed")
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
            if not self._listeners and self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
                self._task = None

    def close(self) -> None:
        """End every open stream (and refuse new ones): for an owner shutting down."""
        self.closed.set()

    async def _poll(self) -> None:
        previous: Fingerprint | None = None
        while self._listeners:
            try:
                current, records = await self._read()
            except Exception as exc:  # a lost poll is retried; the stream stays open
                log.warning("live feed: %s", exc)
            else:
                if previous is not None:
                    changed = [
                        _summary(r)
                        for r in records
                        if previous.get(r.execution_id) != current[r.execution_id]
                    ]
                    gone = previous.keys() - current.keys()
                    if changed or gone:
                        self._publish(_event_text(changed))
                previous = current
            await asyncio.sleep(self.poll_seconds)

    async def _read(self) -> tuple[Fingerprint, list[ExecutionRecord]]:
        newest = await self.database.list_executions(limit=WATCHED)
        active = await self.database.list_executions(status=list(ACTIVE_STATUSES), limit=500)
        records = {r.execution_id: r for r in [*newest, *active]}
        fingerprint = {
            key: (r.status.value, None if r.finished_at is None else r.finished_at.isoformat())
            for key, r in records.items()
        }
        # a step that finished changes the record's step list, not its status
        for key, record in records.items():
            status, finished = fingerprint[key]
            fingerprint[key] = (f"{status}/{len(record.step_statuses)}", finished)
        return fingerprint, list(records.values())

    def _publish(self, data: str) -> None:
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(data)


def _event_text(changed: list[dict[str, Any]]) -> str:
    """The SSE text of one change: ``executions`` (for lists), then ``execution-{id}``
    for each changed execution and ``job-{name}`` for each job they belong to, so a
    page refreshes only on what it shows."""
    parts = [f"event: executions\ndata: {json.dumps({'changed': changed})}\n\n"]
    parts.extend(
        f"event: execution-{item['execution_id']}\ndata: {json.dumps(item)}\n\n" for item in changed
    )
    parts.extend(
        f"event: job-{name}\ndata: {{}}\n\n" for name in sorted({c["job_name"] for c in changed})
    )
    return "".join(parts)


def _summary(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "execution_id": record.execution_id,
        "job_name": record.job_name,
        "status": record.status.value,
        "steps": len(record.step_statuses),
    }


def _keep_alive(request: Request) -> bool | None:
    cycle = getattr(request.receive, "__self__", None)
    value = getattr(cycle, "keep_alive", None)
    return value if isinstance(value, bool) else None


def _server_closing(request: Request, started_with: bool | None) -> bool:
    """Whether uvicorn asked this connection to finish (its keep-alive went off)."""
    return started_with is True and _keep_alive(request) is False


async def stream(
    request: Request, feed: LiveFeed, *, lifetime: float = STREAM_SECONDS
) -> AsyncIterator[str]:
    """The text of one SSE response (see the module for when it ends)."""
    started_with = _keep_alive(request)
    deadline = time.monotonic() + lifetime
    beat = time.monotonic() + HEARTBEAT_SECONDS
    yield f"retry: {RETRY_MS}\n: connected\n\n"
    async with feed.listen() as queue:
        # What changed between the page's rendering and now: the page refreshes once.
        yield "event: resync\ndata: {}\n\n"
        while not feed.closed.is_set() and time.monotonic() < deadline:
            if _server_closing(request, started_with):
                return
            try:
                data = await asyncio.wait_for(queue.get(), timeout=TICK_SECONDS)
            except TimeoutError:
                if time.monotonic() >= beat:
                    beat = time.monotonic() + HEARTBEAT_SECONDS
                    yield ": keep-alive\n\n"
                continue
            yield data
