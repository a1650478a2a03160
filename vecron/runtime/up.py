"""``vecron up``: the reconciler, the scheduler, a worker pool and the HTTP server in one
process, on the backends the settings name (embedded by default).

One owner starts everything inside an ``AsyncExitStack`` and stops it in reverse:
on SIGINT or SIGTERM the reconciler and the scheduler stop at once, the worker lets
the runs in flight finish for ``grace_seconds`` and then cancels them (they are
recorded as ``interrupted``), and the server closes last.

Executions created by other processes (``vecron trigger`` in another terminal, another
scheduler) reach this worker through the database: a sweeper enqueues every queued
execution this process has not enqueued itself, and the claim on the row guarantees
that no execution runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import uvicorn
from starlette.applications import Starlette

from vecron.backends.breaker import open_breaker
from vecron.backends.database import ExecutionStatus
from vecron.backends.locks import open_locks
from vecron.backends.queue import Queue, open_queue
from vecron.backends.ratelimit import open_rate_limiter
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import Source
from vecron.reconciler.sync import reconcile
from vecron.runtime.metrics import Metrics
from vecron.runtime.scheduler import Fired, Scheduler
from vecron.runtime.steps import default_executors
from vecron.runtime.worker import Worker, enqueue
from vecron.settings import Settings
from vecron.stores import Stores, open_stores
from vecron.webhook.app import create_app
from vecron.webhook.state import ServerState

log = logging.getLogger("vecron.up")

SWEEP_SECONDS = 1.0
#: How long an execution may stay queued before the sweeper of a worker on a shared
#: queue publishes it again (its first publish was lost to a queue outage).
ORPHAN_SECONDS = 10.0
#: How long the sweeper remembers what this process published (the queue's window).
KNOWN_SECONDS = 120.0
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True, slots=True, kw_only=True)
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 8
    sync_interval_seconds: float = 30.0
    grace_seconds: float = 30.0
    lease_seconds: float = 60.0
    sync: SyncOptions = field(default_factory=SyncOptions)
    #: What this process does: reconcile, schedule, work, serve (``vecron up``: all).
    roles: frozenset[str] = frozenset({"reconcile", "schedule", "work", "serve"})


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``vecron up`` owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Sweeper:
    """Enqueues queued executions that no queue of this process holds.

    With the in-process queue that is every execution another process created, at
    once. With a shared queue (NATS) the process that created an execution published
    it, so only the orphans are swept: executions still queued ``orphan_seconds``
    after they were queued (or after their retry became due), whose publish was lost
    to a queue outage. Publishing deduplicates, so a sweep that races a publish is
    harmless.
    """

    def __init__(self, stores: Stores, queue: Queue, *, orphan_seconds: float = 0.0) -> None:
        self.stores = stores
        self.queue = queue
        self.orphan_seconds = orphan_seconds
        #: Executions this process published, and when (monotonic seconds).
        self.known: dict[str, float] = {}

    def settled(self, execution_id: str) -> None:
        self.known.pop(execution_id, None)

    def published(self, execution_id: str) -> None:
        self.known[execution_id] = time.monotonic()

    def _forget_old(self) -> None:
        """Forget what was published longer ago than the queue remembers duplicates: a
        run another process took and left queued gets published again then."""
        horizon = time.monotonic() - KNOWN_SECONDS
        for execution_id in [e for e, at in self.known.items() if at < horizon]:
            del self.known[execution_id]

    async def sweep(self) -> int:
        records = await self.stores.database.list_executions(
            status=ExecutionStatus.QUEUED, limit=500
        )
        self._forget_old()
        added = 0
        now = datetime.now(UTC)
        orphaned = now - timedelta(seconds=self.orphan_seconds)
        for record in reversed(records):  # oldest first
            if record.execution_id in self.known:
                continue
            if record.leased_until is not None and record.leased_until > now:
                continue  # a retry waiting out its backoff
            if (record.leased_until or record.queued_at) > orphaned:
                continue  # its publisher's message is on its way
            self.published(record.execution_id)
            try:
                if await enqueue(self.queue, record):
                    added += 1
            except ConnectionError:
                self.known.pop(record.execution_id, None)  # the next sweep tries again
                raise
        # Runs whose worker died: their lease expired while "running".
        stale = await self.stores.database.list_executions(
            status=ExecutionStatus.RUNNING, limit=500
        )
        for record in stale:
            expired = record.leased_until is not None and record.leased_until < now
            if expired and record.execution_id not in self.known:
                self.published(record.execution_id)
                await enqueue(self.queue, record)
        return added

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except (OSError, ConnectionError) as exc:
                log.error("sweeper: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_SECONDS)


async def run_up(
    settings: Settings,
    source: Source | None,
    options: UpOptions,
    *,
    stop: asyncio.Event,
    announce: Callable[[str], None] = print,
) -> None:
    """Run everything until ``stop`` is set."""
    # Steps to a failing target fail fast; with Redis, every worker shares the state.
    breaker = open_breaker(settings.redis_url)
    metrics = Metrics(breaker=breaker)
    queue = open_queue(settings.effective_queue_url)
    executors = default_executors(breaker=breaker)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(breaker.close)  # first in, so closed after the executors
        stores = await stack.enter_async_context(open_stores(settings))
        stack.push_async_callback(queue.close)
        for executor in executors.values():
            stack.push_async_callback(executor.close)

        rate_limiter = open_rate_limiter(settings.redis_url)
        stack.push_async_callback(rate_limiter.close)
        shared = not settings.effective_queue_url.startswith("memory:")
        sweeper = Sweeper(stores, queue, orphan_seconds=ORPHAN_SECONDS if shared else 0.0)

        def fired(event: Fired) -> None:
            metrics.scheduler_lag.observe(max(event.lateness_seconds, 0.0))
            if event.execution_id is not None:
                sweeper.published(event.execution_id)

        locks = open_locks(settings.redis_url)
        stack.push_async_callback(locks.close)
        scheduler = Scheduler(stores=stores, queue=queue, on_fire=fired, locks=locks)
        worker = Worker(
            stores=stores,
            queue=queue,
            executors=executors,
            concurrency=options.workers,
            lease_seconds=options.lease_seconds,
            metrics=metrics,
            on_settled=sweeper.settled,
            hand_back=shared,
        )
        app = create_app(stores=stores, queue=queue, metrics=metrics, rate_limiter=rate_limiter)
        served: ServerState = app.state.vecron
        served.after_sync.append(scheduler.wake)
        roles = options.roles
        if "serve" not in roles:
            # Another role serves only its probes and metrics.
            app = Starlette(routes=[r for r in app.routes if getattr(r, "path", "") in PROBES])
        server = _Server(
            uvicorn.Config(
                app,
                host=options.host,
                port=options.port,
                log_level="warning",
                log_config=None,
                lifespan="off",
            )
        )
        serving: asyncio.Task[None] | None = None
        if "serve" in roles or options.port:
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            if serving.done():
                serving.result()  # the port is taken, or the server failed: raise it
                raise OSError(f"the HTTP server on {options.host}:{options.port} did not start")

        announce(f"vecron: {', '.join(sorted(roles))}")
        if source is not None and "reconcile" in roles:
            announce(f"  repository    {source.describe()}")
        announce(f"  database      {stores.database.describe()}")
        announce(f"  objects       {stores.objects.describe()}")
        announce(f"  queue         {queue.describe()}")
        if serving is not None:
            address = f"http://{options.host}:{options.port}"
            what = "api" if "serve" in roles else "probes"
            announce(f"  {what:<13} {address}  (/healthz, /readyz, /metrics)")
            if "serve" in roles:
                announce(f"  dashboard     {address}/ui/")
        if "work" in roles:
            announce(f"  workers       {options.workers}")

        background_stop = asyncio.Event()

        def synced(result: object) -> None:
            scheduler.wake()

        tasks = []
        if source is not None and "reconcile" in roles:
            tasks.append(
                asyncio.create_task(
                    reconcile(
                        source,
                        stores,
                        options.sync,
                        interval_seconds=options.sync_interval_seconds,
                        stop=background_stop,
                        on_result=synced,
                        lock=served.sync_lock,
                    ),
                    name="reconciler",
                )
            )
        if "schedule" in roles:
            tasks.append(asyncio.create_task(scheduler.run(background_stop), name="scheduler"))
        working: asyncio.Task[None] | None = None
        if "work" in roles:
            tasks.append(asyncio.create_task(sweeper.run(background_stop), name="sweeper"))
            working = asyncio.create_task(worker.run(background_stop), name="worker")
        await stop.wait()
        announce(f"vecron: stopping (runs in flight get {options.grace_seconds:.0f} s to finish)")
        background_stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if working is not None:
            try:
                await asyncio.wait_for(asyncio.shield(working), timeout=options.grace_seconds)
            except TimeoutError:
                log.warning("runs still in flight after the grace period: interrupting them")
                await worker.interrupt()
                await working
        if serving is not None:
            server.should_exit = True
            await serving
        announce("vecron: stopped")
