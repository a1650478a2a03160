"""Commands on runs: trigger, retry, runs, show."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vecron.cli.output import print_table, when
from vecron.settings import Settings

if TYPE_CHECKING:
    from vecron.backends.database import Database, ExecutionRecord


def register(commands: Any) -> None:
    trigger = commands.add_parser("trigger", help="run a job now (a manual trigger)")
    trigger.add_argument("job", metavar="JOB")
    trigger.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run to finish (running it in this process if no worker does)",
    )
    trigger.add_argument("--format", choices=("text", "json"), default="text")
    trigger.set_defaults(handler=_trigger)

    retry = commands.add_parser(
        "retry",
        help="run a failed, timed-out, interrupted or dead-lettered execution again",
        description="Queue a new execution of the job's current definition with the "
        "original's trigger data (a webhook's payload included); retrying one execution "
        "twice gives the first retry.",
    )
    retry.add_argument("execution", metavar="EXECUTION")
    retry.add_argument("--format", choices=("text", "json"), default="text")
    retry.set_defaults(handler=_retry)

    runs = commands.add_parser("runs", help="list executions, newest first")
    runs.add_argument("job", nargs="?", metavar="JOB")
    runs.add_argument("--status", default=None)
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--format", choices=("text", "json"), default="text")
    runs.set_defaults(handler=_runs)

    show = commands.add_parser("show", help="one execution: steps, error, context")
    show.add_argument("execution", metavar="EXECUTION")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=_show)


def _trigger(args: argparse.Namespace) -> int:
    from vecron.backends.database import TriggerSource
    from vecron.backends.queue import MemoryQueue
    from vecron.runtime.steps import default_executors
    from vecron.runtime.trigger import create_execution, load_definition
    from vecron.runtime.worker import Worker, enqueue
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> Any:
        async with open_stores(settings) as stores:
            job = await stores.database.get_job(args.job)
            manual = True
            if job.content_hash is not None:
                definition = await load_definition(stores.objects, job.job_id, job.content_hash)
                manual = definition.triggers.manual
            record = await create_execution(
                stores.database,
                args.job,
                trigger_source=TriggerSource.MANUAL,
                manual_allowed=manual,
            )
            if await _publish(settings, record):
                # A shared queue: the workers run it.
                if not args.wait:
                    return record
                return await wait_until_final(stores.database, record.execution_id)
            if not args.wait:
                return record
            # Run it here; the claim makes sure that a running worker and this process
            # never both run it.
            queue = MemoryQueue()
            executors = default_executors()
            worker = Worker(stores=stores, queue=queue, executors=executors, concurrency=1)
            try:
                await enqueue(queue, record)
                (delivery,) = await queue.fetch(timeout_seconds=1)
                await worker.process(delivery)
            finally:
                for executor in executors.values():
                    await executor.close()
            # A running `vecron up` may have claimed it first: then wait for its end.
            return await wait_until_final(stores.database, record.execution_id)

    record = asyncio.run(run())
    if args.format == "json":
        print(json.dumps(_execution_json(record), indent=2, ensure_ascii=False))
    elif not args.wait:
        print(f"{record.execution_id} queued ({record.job_name})")
    else:
        print(
            f"{record.execution_id} {record.status}" + (f": {record.error}" if record.error else "")
        )
    if args.wait and str(record.status) != "succeeded":
        return 1
    return 0


async def _publish(settings: Settings, record: ExecutionRecord) -> bool:
    """Publish ``record`` on the settings' queue when it is shared (NATS); whether it
    did. The in-process queue is another process's: a running worker's sweeper finds
    the new row in the database instead. A queue that is down only delays the run:
    the workers' sweepers publish what stayed queued."""
    from vecron.backends.queue import open_queue
    from vecron.runtime.worker import enqueue

    if settings.effective_queue_url.startswith("memory:"):
        return False
    queue = open_queue(settings.effective_queue_url)
    try:
        await enqueue(queue, record)
    except ConnectionError as exc:
        print(f"warning: {exc}; a worker will pick the run up later", file=sys.stderr)
    finally:
        await queue.close()
    return True


def _retry(args: argparse.Namespace) -> int:
    from vecron.runtime.trigger import retry_execution
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> tuple[ExecutionRecord, ExecutionRecord, bool]:
        async with open_stores(settings) as stores:
            original, record, replayed = await retry_execution(
                stores.database,
                stores.objects,
                args.execution,
                requested_by=f"cli:{getpass.getuser()}",
            )
            if not replayed:
                await _publish(settings, record)
            return original, record, replayed

    original, record, replayed = asyncio.run(run())
    if args.format == "json":
        document = {**_execution_json(record), "retry_of": original.execution_id}
        document["replayed"] = replayed
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        again = " (retried before: the same retry)" if replayed else ""
        print(f"{record.execution_id} queued: a retry of {original.execution_id}{again}")
    return 0


async def wait_until_final(
    database: Database, execution_id: str, *, poll_seconds: float = 0.2
) -> ExecutionRecord:
    """The execution once it has a final status (whoever runs it)."""
    from vecron.backends.database import FINAL_STATUSES

    while True:
        record = await database.get_execution(execution_id)
        if record.status in FINAL_STATUSES:
            return record
        await asyncio.sleep(poll_seconds)


def _runs(args: argparse.Namespace) -> int:
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> Any:
        async with open_stores(settings) as stores:
            return await stores.database.list_executions(
                job_name=args.job, status=args.status, limit=args.limit
            )

    records = asyncio.run(run())
    if args.format == "json":
        print(json.dumps([_execution_json(r) for r in records], indent=2, ensure_ascii=False))
        return 0
    table = [("EXECUTION", "JOB", "STATUS", "TRIGGER", "QUEUED (UTC)", "DURATION", "ATTEMPT")]
    for r in records:
        table.append(
            (
                r.execution_id,
                r.job_name,
                str(r.status),
                str(r.trigger_source),
                when(r.queued_at),
                _duration(r.started_at, r.finished_at),
                str(r.attempt),
            )
        )
    print_table(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from vecron.errors import ObjectNotFound
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> Any:
        async with open_stores(settings) as stores:
            record = await stores.database.get_execution(args.execution)
            context = None
            if record.minio_context_path:
                try:
                    context = json.loads(await stores.objects.get(record.minio_context_path))
                except ObjectNotFound:
                    context = None
            return record, context

    record, context = asyncio.run(run())
    if args.format == "json":
        document = _execution_json(record)
        document["context"] = context
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    print(f"execution  {record.execution_id}")
    print(f"job        {record.job_name}")
    print(f"status     {record.status}  (attempt {record.attempt}, {record.trigger_source})")
    print(f"queued     {when(record.queued_at)}")
    print(f"duration   {_duration(record.started_at, record.finished_at)}")
    if record.error:
        print(f"error      {record.error}")
    print(f"context    {record.minio_context_path or '-'}")
    print("steps")
    for step in record.step_statuses:
        took = _duration(_parse(step.get("started_at")), _parse(step.get("completed_at")))
        line = f"  {step['id']:<24} {step['status']:<10} {took}"
        if step.get("error"):
            line += f"  {step['error']}"
        print(line)
    if context is not None:
        print("context.json")
        print(json.dumps(context, indent=2, ensure_ascii=False))
    return 0


def _execution_json(record: Any) -> dict[str, Any]:
    return {
        "execution_id": record.execution_id,
        "job_id": record.job_id,
        "job_name": record.job_name,
        "status": str(record.status),
        "trigger_source": str(record.trigger_source),
        "attempt": record.attempt,
        "queued_at": _iso(record.queued_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "error": record.error,
        "context_path": record.minio_context_path,
        "steps": list(record.step_statuses),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _parse(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
