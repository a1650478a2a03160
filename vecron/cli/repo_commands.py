"""Commands between the job repository and the stores: plan, sync, reconcile, jobs."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from vecron.cli.output import print_table, when
from vecron.cli.up_commands import add_log_options
from vecron.settings import Settings

EXIT_NO_CHANGES = 0
EXIT_ERRORS = 1
EXIT_CHANGES = 2


def register(commands: Any) -> None:
    plan = commands.add_parser(
        "plan",
        help="show what a sync would change (exit 0 none, 2 changes, 1 errors)",
        description="Compare the job repository with the stores, as `terraform plan` does.",
    )
    _source_options(plan)
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(handler=_plan)

    sync = commands.add_parser("sync", help="make the stores match the job repository, once")
    _source_options(sync)
    sync.add_argument("--format", choices=("text", "json"), default="text")
    sync.set_defaults(handler=_sync)

    reconcile = commands.add_parser(
        "reconcile", help="sync in a loop (a watched folder syncs as soon as it changes)"
    )
    _source_options(reconcile)
    reconcile.add_argument(
        "--interval", default="30s", metavar="DURATION", help="time between syncs (30s)"
    )
    add_log_options(reconcile)
    reconcile.set_defaults(handler=_reconcile)

    jobs = commands.add_parser("jobs", help="list the live jobs")
    jobs.add_argument("--format", choices=("text", "json"), default="text")
    jobs.set_defaults(handler=_jobs)


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        default=None,
        metavar="PATH|URL",
        help="job repository: a folder, or a Git URL or path with --ref (default: .)",
    )
    parser.add_argument("--ref", default=None, help="branch, tag or commit (Git)")
    parser.add_argument("--path", default=None, help="the job repository's folder inside it")
    parser.add_argument(
        "--allow-empty", action="store_true", help="allow a sync that removes every job"
    )
    parser.add_argument(
        "--confirm-prune",
        action="store_true",
        help="allow removing more than --prune-threshold of the jobs",
    )
    parser.add_argument(
        "--no-prune", action="store_true", help="disable jobs whose file is gone, never delete"
    )
    parser.add_argument("--prune-threshold", type=float, default=0.5, metavar="FRACTION")


def _options(args: argparse.Namespace) -> Any:
    from vecron.reconciler.plan import SyncOptions

    return SyncOptions(
        allow_empty=args.allow_empty,
        confirm_prune=args.confirm_prune,
        prune=not args.no_prune,
        prune_threshold=args.prune_threshold,
    )


def _settings_and_source(args: argparse.Namespace) -> tuple[Settings, Any]:
    from vecron.reconciler.sources import open_source

    settings = Settings.from_env()
    repo = args.repo or settings.repo or "."
    source = open_source(
        repo,
        ref=args.ref or settings.repo_ref,
        path=args.path or settings.repo_path,
        cache_dir=settings.home / "git",
    )
    return settings, source


def _plan(args: argparse.Namespace) -> int:
    from vecron.reconciler.render import plan_json, plan_text
    from vecron.reconciler.sync import plan_once
    from vecron.stores import open_stores

    settings, source = _settings_and_source(args)

    async def run() -> Any:
        async with open_stores(settings) as stores:
            return await plan_once(source, stores, _options(args))

    plan = asyncio.run(run())
    sys.stdout.write(plan_json(plan) if args.format == "json" else plan_text(plan))
    if plan.invalid or plan.refusal:
        return EXIT_ERRORS
    return EXIT_CHANGES if plan.has_changes else EXIT_NO_CHANGES


def _sync(args: argparse.Namespace) -> int:
    from vecron.reconciler.render import plan_json, plan_text
    from vecron.reconciler.sync import sync_once
    from vecron.stores import open_stores

    settings, source = _settings_and_source(args)

    async def run() -> Any:
        async with open_stores(settings) as stores:
            return await sync_once(source, stores, _options(args))

    result = asyncio.run(run())
    plan = result.plan
    if args.format == "json":
        sys.stdout.write(plan_json(plan))
    else:
        sys.stdout.write(plan_text(plan, verb="sync"))
        verdict = "degraded (invalid files kept their jobs)" if plan.invalid else "ok"
        if not result.wrote:
            verdict = "ok, nothing to do"
        print(f"Sync: {verdict}.")
    return EXIT_ERRORS if plan.invalid else 0


def _reconcile(args: argparse.Namespace) -> int:
    from vecron.logs import configure_logging
    from vecron.reconciler.sync import reconcile
    from vecron.spec.schedules import interval_seconds
    from vecron.stores import open_stores

    configure_logging(level=args.log_level, fmt=args.log_format)
    settings, source = _settings_and_source(args)
    every = interval_seconds(args.interval)

    def report(result: Any) -> None:
        counts = result.plan.counts
        if result.wrote:
            summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
            print(f"sync {result.status}: {summary or 'nothing changed'}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_stores(settings) as stores:
            print(f"reconciling {source.describe()} every {args.interval}", flush=True)
            await reconcile(
                source, stores, _options(args), interval_seconds=every, stop=stop, on_result=report
            )

    asyncio.run(run())
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> tuple[list[Any], Any]:
        async with open_stores(settings) as stores:
            return await stores.database.list_jobs(), await stores.database.last_sync()

    jobs, last = asyncio.run(run())
    if args.format == "json":
        rows = [
            {
                "name": j.name,
                "job_id": j.job_id,
                "enabled": j.enabled,
                "disabled_reason": j.disabled_reason,
                "schedule": j.schedule_expression,
                "timezone": j.timezone,
                "next_run_at": j.next_run_at.isoformat() if j.next_run_at else None,
                "source_commit": j.source_commit,
                "source_path": j.source_path,
                "webhook": j.webhook_enabled,
            }
            for j in jobs
        ]
        document = {"jobs": rows, "last_sync": _sync_json(last)}
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    header = ("NAME", "ENABLED", "SCHEDULE", "NEXT RUN (UTC)", "COMMIT", "SOURCE")
    table = [header]
    for j in jobs:
        table.append(
            (
                j.name,
                "yes" if j.enabled else f"no ({j.disabled_reason})" if j.disabled_reason else "no",
                j.schedule_expression or "-",
                when(j.next_run_at),
                (j.source_commit or "-")[:12],
                j.source_path or "-",
            )
        )
    print_table(table)
    if last is None:
        print("\nlast sync: never")
    else:
        print(
            f"\nlast sync: {last.status} at {when(last.finished_at or last.started_at)} "
            f"from {last.source}" + (f" ({last.commit[:12]})" if last.commit else "")
        )
        for error in last.errors[:20]:
            print(f"  {error['path']}:{error['line']}:{error['column']}: {error['message']}")
    return 0


def _sync_json(last: Any) -> Any:
    if last is None:
        return None
    return {
        "sync_id": last.sync_id,
        "status": str(last.status),
        "source": last.source,
        "commit": last.commit,
        "started_at": last.started_at.isoformat(),
        "finished_at": last.finished_at.isoformat() if last.finished_at else None,
        "counts": last.counts,
        "errors": list(last.errors),
        "message": last.message,
    }
