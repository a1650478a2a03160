"""``vecron up`` (everything in one process) and the roles one by one."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
from collections.abc import Coroutine
from typing import Any

from vecron.settings import Settings

ROLES = {
    "up": frozenset({"reconcile", "schedule", "work", "serve"}),
    "scheduler": frozenset({"schedule"}),
    "worker": frozenset({"work"}),
    "serve": frozenset({"serve"}),
}


def register(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="run everything in one process: sync (watching), scheduler, workers, API",
        description="Run vecron in one process on the backends the settings name "
        "(embedded by default: SQLite and a folder under ./.vecron/).",
    )
    _repository(up)
    _common(up, port=8080)
    up.set_defaults(handler=_up, roles=ROLES["up"])
    for role, text in (
        ("scheduler", "fire due jobs into the queue (a distributed role)"),
        ("worker", "run queued executions (a distributed role)"),
        ("serve", "serve the HTTP API (a distributed role)"),
    ):
        # `vecron reconcile` (repo_commands) is the fourth role.
        parser = commands.add_parser(role, help=text)
        _common(parser, port=8080 if role == "serve" else 0)
        parser.set_defaults(handler=_up, roles=ROLES[role], repo=None, ref=None, path=None)


def _repository(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", nargs="?", default=None, metavar="REPO", help="default: .")
    parser.add_argument("--ref", default=None, help="branch, tag or commit (Git)")
    parser.add_argument("--path", default=None, help="the job repository's folder inside it")
    parser.add_argument("--sync-interval", default="30s", metavar="DURATION")


def _common(parser: argparse.ArgumentParser, *, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=port,
        help="HTTP port"
        + ("" if port else "; set, the role serves /healthz, /readyz and /metrics there"),
    )
    parser.add_argument("--workers", type=int, default=8, help="runs in flight at once")
    parser.add_argument("--grace", default="30s", metavar="DURATION", help="shutdown grace")
    parser.add_argument(
        "--lease",
        default="60s",
        metavar="DURATION",
        help="how long a worker's claim on a run lasts without its heartbeat: a killed "
        "worker's runs resume elsewhere after it",
    )
    add_log_options(parser)


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``, for every command that runs for a while."""
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text lines, or one JSON object per line (on stderr)",
    )


def _up(args: argparse.Namespace) -> int:
    from vecron.logs import configure_logging
    from vecron.reconciler.sources import open_source
    from vecron.runtime.up import UpOptions, run_up
    from vecron.spec.schedules import parse_duration

    configure_logging(level=args.log_level, fmt=args.log_format)
    # The repository given here is the one POST /api/v1/sync syncs too.
    settings = Settings.from_env(
        repo=getattr(args, "repo", None),
        repo_ref=getattr(args, "ref", None),
        repo_path=getattr(args, "path", None),
    )
    source = None
    if "reconcile" in args.roles:
        if settings.repo is None:
            settings = dataclasses.replace(settings, repo=".")
        source = open_source(
            settings.repo or ".",
            ref=settings.repo_ref,
            path=settings.repo_path,
            cache_dir=settings.home / "git",
        )
    options = UpOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        sync_interval_seconds=parse_duration(getattr(args, "sync_interval", "30s")),
        grace_seconds=parse_duration(args.grace),
        lease_seconds=parse_duration(args.lease),
        roles=args.roles,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_up(settings, source, options, stop=stop, announce=_say)

    _run_loop(main())
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the long-lived roles on uvloop where it is installed (a faster event loop
    for the server and the workers), on asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
