"""Distributed mode: sustained runs per minute and enqueue-to-start latency with 1, 2
and 4 worker processes on NATS JetStream + PostgreSQL + S3, and the scheduler's lag
with 10,000 jobs loaded.

Everything is real and on this machine: a PostgreSQL database of its own on the local
server, SeaweedFS S3 (started here), a stream of its own on the local NATS server, an
echo server in a subprocess, and ``vecron worker`` processes. The producer creates
executions as the API does (``create_execution`` + publish) with at most
``--backlog`` runs waiting, for ``--duration`` seconds per worker count; then the
figures come from the execution rows: runs finished per second and per minute in the
window, and ``started_at - queued_at`` p50/p99 (enqueue to start).

The scheduler phase syncs ``--jobs`` jobs that all fire every 10 seconds, runs one
``vecron scheduler`` (no workers: the fires wait in NATS) for ``--lag-seconds``, and
reports ``queued_at - scheduled_at`` (fire time to enqueued) p50/p99/max and the fires
per second of each burst.

Goal (issue 9): >= 8,000 runs a minute (n8n's embedded 120-150 runs/s) with p99 under
1 s; Kestra OSS saturates at 2,000 a minute on 4 vCPU. Figures only, no timed asserts.

    .venv/bin/python benchmarks/distributed_bench.py [--workers 1,2,4] [--duration 20]
        [--concurrency 32] [--backlog 400] [--jobs 10000] [--lag-seconds 35]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.runtime_bench import echo_server, percentile  # noqa: E402
from tests.backends.db_fixtures import throwaway_pg_database  # noqa: E402
from tests.services.seaweed import seaweed_s3_server  # noqa: E402
from vecron.backends.database import TriggerSource  # noqa: E402
from vecron.backends.queue import open_queue  # noqa: E402
from vecron.runtime.trigger import create_execution  # noqa: E402
from vecron.runtime.worker import enqueue  # noqa: E402
from vecron.settings import Settings  # noqa: E402
from vecron.stores import open_stores  # noqa: E402

JOB = """
name: bench
allow_concurrent: true
steps:
  - id: post
    type: http
    config:
      url: "{url}/echo"
      method: POST
      body: {{order: "{{{{execution.id}}}}"}}
"""

TICK = """
name: tick-{n:05d}
schedule: {{type: cron, expression: "*/10 * * * * ?"}}
steps:
  - id: noop
    type: http
    config: {{url: "http://127.0.0.1:9/"}}
"""


def vecron(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"vecron {' '.join(args)}: {result.stderr[-2000:]}")
    return result.stdout


@contextlib.contextmanager
def roles(env: dict[str, str], role: str, count: int, *args: str) -> Iterator[list[Any]]:
    logs = Path(env["VECRON_HOME"])
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for n in range(count):
        out = (logs / f"{role}-{n}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "vecron", role, *args, "--log-level", "warning"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 60
    for n in range(count):
        while "  queue " not in (logs / f"{role}-{n}.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{role} {n} did not start")
            time.sleep(0.1)
    try:
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as connection:
        return list(connection.execute(query, params).fetchall())


async def produce(
    settings: Settings, database_url: str, *, duration: float, backlog: int
) -> tuple[int, float, float]:
    """Create and publish runs for ``duration`` s, at most ``backlog`` unfinished."""
    queue = open_queue(settings.effective_queue_url)
    created = 0
    async with open_stores(settings, migrate=False) as stores:
        job = await stores.database.get_job("bench")
        started = time.time()
        stop_at = time.monotonic() + duration
        finished = 0

        async def one() -> None:
            nonlocal created
            record = await create_execution(
                stores.database, job, trigger_source=TriggerSource.MANUAL
            )
            await enqueue(queue, record)
            created += 1

        while time.monotonic() < stop_at:
            (finished,) = rows(
                database_url,
                "SELECT count(*) FROM job_executions WHERE status NOT IN ('queued','running')",
            )[0]
            room = backlog - (created - finished)
            if room > 0:
                await asyncio.gather(*(one() for _ in range(min(room, 50))))
            else:
                await asyncio.sleep(0.02)
        ended = time.time()
    await queue.close()
    return created, started, ended


def measure_workers(env: dict[str, str], args: argparse.Namespace) -> None:
    settings = Settings.from_env(env)
    database_url = env["VECRON_DATABASE_URL"]
    print("workers  runs/s  runs/min  start p50  start p99  failed  (goal: 8,000/min, p99 < 1 s)")
    for count in [int(n) for n in args.workers.split(",")]:
        rows(database_url, "DELETE FROM job_executions")
        with roles(env, "worker", count, "--workers", str(args.concurrency)):
            created, started, ended = asyncio.run(
                produce(settings, database_url, duration=args.duration, backlog=args.backlog)
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                (left,) = rows(
                    database_url,
                    "SELECT count(*) FROM job_executions WHERE status IN ('queued','running')",
                )[0]
                if not left:
                    break
                time.sleep(0.5)
        window = rows(
            database_url,
            "SELECT extract(epoch FROM started_at - queued_at), status FROM job_executions "
            "WHERE finished_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
            started,
            ended,
        )
        starts = [float(r[0]) for r in window if r[0] is not None]
        failed = sum(1 for r in window if r[1] != "succeeded")
        rate = len(window) / (ended - started)
        print(
            f"{count:>7}  {rate:6.0f}  {rate * 60:8.0f}  {percentile(starts, 0.5) * 1000:6.0f} ms"
            f"  {percentile(starts, 0.99) * 1000:6.0f} ms  {failed:6d}   ({created} created)",
            flush=True,
        )


def measure_scheduler(env: dict[str, str], args: argparse.Namespace, repo: Path) -> None:
    database_url = env["VECRON_DATABASE_URL"]
    jobs = repo / "jobs"
    for path in jobs.glob("*.yaml"):
        path.unlink()
    for n in range(args.jobs):
        (jobs / f"tick-{n:05d}.yaml").write_text(TICK.format(n=n))
    began = time.monotonic()
    vecron(env, "sync", "--repo", str(repo))
    print(f"\nscheduler: {args.jobs} jobs synced in {time.monotonic() - began:.1f} s")
    rows(database_url, "DELETE FROM job_executions")
    with roles(env, "scheduler", 1):
        time.sleep(args.lag_seconds)
    fires = rows(
        database_url,
        "SELECT scheduled_at, extract(epoch FROM queued_at - scheduled_at) "
        "FROM job_executions WHERE trigger_source = 'scheduled'",
    )
    lags = [float(lag) for _, lag in fires]
    bursts: dict[Any, list[float]] = {}
    for at, lag in fires:
        bursts.setdefault(at, []).append(float(lag))
    print(
        f"scheduler: {len(fires)} fires in {len(bursts)} bursts of up to {args.jobs}; "
        f"fire-to-enqueued p50 {percentile(lags, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(lags, 0.99) * 1000:.0f} ms, max {max(lags, default=0) * 1000:.0f} ms"
    )
    for at, burst in sorted(bursts.items()):
        spread = max(burst) - min(burst)
        rate = len(burst) / max(*burst, 0.001)
        print(
            f"  burst {at:%H:%M:%S}: {len(burst)} fires, last after {max(burst):.2f} s "
            f"({rate:.0f} fires/s, spread {spread:.2f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backlog", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--lag-seconds", type=float, default=35)
    parser.add_argument("--skip-scheduler", action="store_true")
    args = parser.parse_args()
    nats_url = os.environ.get("VECRON_TEST_NATS_URL", "nats://127.0.0.1:4222")
    redis_url = os.environ.get("VECRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    stream = f"BENCH{secrets.token_hex(4).upper()}"
    with (
        tempfile.TemporaryDirectory() as folder,
        seaweed_s3_server() as s3,
        throwaway_pg_database() as database_url,
        echo_server() as (url, _pid),
    ):
        root = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
        env.update(
            VECRON_HOME=str(root / "home"),
            VECRON_SECRET_KEY="bench",
            VECRON_DATABASE_URL=database_url,
            VECRON_OBJECT_STORE_URL=s3.url("bench"),
            VECRON_QUEUE_URL=f"{nats_url}?stream={stream}",
            VECRON_REDIS_URL=redis_url,
        )
        repo = root / "repo"
        (repo / "jobs").mkdir(parents=True)
        (repo / "jobs" / "bench.yaml").write_text(JOB.format(url=url))
        vecron(env, "sync", "--repo", str(repo))
        try:
            measure_workers(env, args)
            if not args.skip_scheduler:
                measure_scheduler(env, args, repo)
        finally:
            asyncio.run(_delete_stream(env["VECRON_QUEUE_URL"]))


async def _delete_stream(url: str) -> None:
    from vecron.backends.queue.nats import NatsQueue

    queue = NatsQueue.from_url(url)
    try:
        await queue.delete_streams()
    finally:
        await queue.close()


if __name__ == "__main__":
    main()
