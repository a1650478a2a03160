"""The sync page: the last sync (commit, counts, invalid files with their errors), the
recent ones, the pending plan, and "sync now" for callers with ``job:write``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.responses import Response

from vecron.backends.database import SyncRecord
from vecron.dashboard.render import PREFIX
from vecron.dashboard.web import Visit, redirect
from vecron.errors import SourceError, SyncRefused, VecronError
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.render import plan_text
from vecron.reconciler.sources import DirectorySource, Source, open_source
from vecron.reconciler.sync import plan_once
from vecron.webhook.api_common import ApiError
from vecron.webhook.api_sync import SyncRunner
from vecron.webhook.tokens import Permission

PLAN_TIMEOUT_SECONDS = 60.0


def invalid_files(errors: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """A sync's errors grouped by file: ``[(path, ["line:col: message", …]), …]``."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        where = f"{error.get('line', '?')}:{error.get('column', '?')}"
        grouped.setdefault(str(error.get("path")), []).append(f"{where}: {error.get('message')}")
    return sorted(grouped.items())


def _source(visit: Visit, last: SyncRecord | None) -> Source | None:
    """The configured repository, else the folder the last sync read (``vecron up DIR``)."""
    settings = visit.state.stores.settings
    if settings.repo:
        return open_source(
            settings.repo,
            ref=settings.repo_ref,
            path=settings.repo_path,
            cache_dir=settings.home / "git",
        )
    if last is not None and "://" not in last.source and Path(last.source).is_dir():
        return DirectorySource(last.source)
    return None


async def sync_page(visit: Visit, *, message: str | None = None) -> Response:
    database = visit.state.stores.database
    syncs = await database.list_syncs(10)
    last = syncs[0] if syncs else None
    plan = None
    plan_error = None
    if visit.request.query_params.get("plan"):
        plan, plan_error = await _plan(visit, last)
    return visit.page(
        "sync.html",
        nav="sync",
        last=last,
        syncs=syncs,
        invalid=invalid_files(last.errors) if last is not None else [],
        plan=plan,
        plan_error=plan_error,
        message=message,
        can_sync=visit.viewer.can(Permission.JOB_WRITE),
        repo_configured=bool(visit.state.stores.settings.repo),
    )


async def _plan(visit: Visit, last: SyncRecord | None) -> tuple[dict[str, Any] | None, str | None]:
    source = _source(visit, last)
    if source is None:
        return None, (
            "no job repository is configured for this server (set VECRON_REPO), "
            "and the last sync did not read a local folder"
        )
    try:
        async with asyncio.timeout(PLAN_TIMEOUT_SECONDS):
            plan = await plan_once(source, visit.state.stores, SyncOptions())
    except TimeoutError:
        return None, f"the plan took over {PLAN_TIMEOUT_SECONDS:g} s"
    except (SourceError, SyncRefused, VecronError, OSError) as exc:
        return None, str(exc)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(close)
    return {
        "text": plan_text(plan),
        "counts": plan.counts,
        "has_changes": plan.has_changes,
        "refusal": plan.refusal,
        "commit": plan.commit,
    }, None


async def sync_now(visit: Visit) -> Response:
    try:
        result = await SyncRunner(visit.state).sync()
    except ApiError as exc:
        return await sync_page(visit, message=exc.message)
    return redirect(f"{PREFIX}/sync?synced={result['status']}")
