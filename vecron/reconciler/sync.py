"""One sync, and the reconcile loop that repeats it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from vecron.errors import VecronError
from vecron.reconciler.apply import SyncResult, apply_plan
from vecron.reconciler.plan import Plan, SyncOptions, build_plan
from vecron.reconciler.sources import DirectorySource, Source
from vecron.stores import Stores

log = logging.getLogger("vecron.reconciler")


async def plan_once(source: Source, stores: Stores, options: SyncOptions) -> Plan:
    """What a sync would change; reads the source in a thread (Git and disk block)."""
    snapshot = await asyncio.to_thread(source.snapshot)
    return await build_plan(
        snapshot, database=stores.database, objects=stores.objects, options=options
    )


async def sync_once(source: Source, stores: Stores, options: SyncOptions) -> SyncResult:
    """Plan and apply; raises :class:`SyncRefused` when a safety rule stops it."""
    snapshot = await asyncio.to_thread(source.snapshot)
    plan = await build_plan(
        snapshot, database=stores.database, objects=stores.objects, options=options
    )
    return await apply_plan(plan, snapshot, database=stores.database, objects=stores.objects)


async def reconcile(
    source: Source,
    stores: Stores,
    options: SyncOptions,
    *,
    interval_seconds: float,
    stop: asyncio.Event,
    on_result: Callable[[SyncResult], None] | None = None,
    lock: asyncio.Lock | None = None,
) -> None:
    """Sync, then again every ``interval_seconds`` (or at once when a watched folder
    changes), until ``stop`` is set. A failed or refused sync is logged and retried
    at the next turn; it never stops the loop. Each sync holds ``lock`` (shared with
    the API's ``POST /sync``), so two syncs never interleave.
    """
    while not stop.is_set():
        try:
            async with lock or contextlib.nullcontext():
                result = await sync_once(source, stores, options)
            if on_result is not None:
                on_result(result)
        except (VecronError, OSError) as exc:  # refused, unreadable source, store down
            log.error("sync failed: %s", exc)
        await _wait(source, stop, interval_seconds)


async def _wait(source: Source, stop: asyncio.Event, interval_seconds: float) -> None:
    waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(_stopped(stop))}
    if isinstance(source, DirectorySource):
        waiters.add(asyncio.ensure_future(_next_change(source.root)))
    done, pending = await asyncio.wait(
        waiters, timeout=interval_seconds, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    del done


async def _stopped(stop: asyncio.Event) -> object:
    return await stop.wait()


async def _next_change(root: Path) -> object:
    from watchfiles import awatch

    async for changes in awatch(root, debounce=300, recursive=True):
        return changes
    return None
