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
        [--concurrency 32] [--backlog 400] [--jobs 10000] [--lag-seconds 60] [--burst]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import shutil
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
schedule: {{type: cron, expression: "{second} * * * * ?"}}
allow_concurrent: true  # no workers run here: earlier fires stay queued
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
def roles(
    env: dict[str, str], role: str, count: int, *args: str, profile_to: str | None = None
) -> Iterator[list[Any]]:
    logs = Path(env["VECRON_HOME"])
    log_level = os.environ.get("BENCH_LOG_LEVEL", "warning")
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for n in range(count):
        out = (logs / f"{role}-{n}.log").open("wb")
        profile = [] if not profile_to else ["-m", "cProfile", "-o", f"{profile_to}.{n}"]
        processes.append(
            subprocess.Popen(
                [sys.executable, *profile, "-m", "vecron", role, *args, "--log-level", log_level],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 60
    for n in range(count):  # each prints its banner once it is up
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
        if log_level == "debug":  # kept: the temporary folder goes away
            for n in range(count):
                shutil.copy(logs / f"{role}-{n}.log", Path(tempfile.gettempdir()))


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as connection:
        cursor = connection.execute(query, params)
        return list(cursor.fetchall()) if cursor.description else []


async def produce(
    settings: Settings,
    database_url: str,
    *,
    duration: float,
    backlog: int,
    rate: float | None = None,
) -> tuple[int, float, float]:
    """Create and publish runs for ``duration`` s: as fast as the backlog allows (at
    most ``backlog`` unfinished), or at ``rate`` a second."""
    queue = open_queue(settings.effective_queue_url)
    created = 0
    polling = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    async with open_stores(settings, migrate=False) as stores:
        job = await stores.database.get_job("bench")
        started = time.time()
        began = time.monotonic()
        stop_at = began + duration

        async def one() -> None:
            nonlocal created
            record = await create_execution(
                stores.database, job, trigger_source=TriggerSource.MANUAL
            )
            await enqueue(queue, record)
            created += 1

        while time.monotonic() < stop_at:
            cursor = await polling.execute(
                "SELECT count(*) FROM job_executions WHERE status NOT IN ('queued','running')"
            )
            (finished,) = await cursor.fetchone() or (0,)
            room = backlog - (created - finished)
            if rate is not None:
                room = min(room, round(rate * (time.monotonic() - began)) - created)
            if room > 0:
                await asyncio.gather(*(one() for _ in range(min(room, 50))))
            else:
                await asyncio.sleep(0.05)
        ended = time.time()
    await polling.close()
    await queue.close()
    return created, started, ended


def cpu_by_part(worker_pids: list[int], echo_pid: int) -> dict[str, float]:
    """CPU seconds so far of each part: the workers, PostgreSQL, SeaweedFS, NATS, the
    echo server and this process (the producer)."""
    parts = {"workers": 0.0, "postgres": 0.0, "s3": 0.0, "nats": 0.0, "echo": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(stat.parent.name)
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if pid in worker_pids:
            parts["workers"] += seconds
        elif pid == echo_pid:
            parts["echo"] += seconds
        elif comm == "postgres":
            parts["postgres"] += seconds
        elif comm == "weed":
            parts["s3"] += seconds
        elif comm == "nats-server":
            parts["nats"] += seconds
    usage = resource.getrusage(resource.RUSAGE_SELF)
    parts["producer"] = usage.ru_utime + usage.ru_stime
    return parts


def measure_workers(env: dict[str, str], args: argparse.Namespace, echo_pid: int) -> None:
    settings = Settings.from_env(env)
    database_url = env["VECRON_DATABASE_URL"]
    print(
        "workers  offered  runs/s  runs/min  start p50  start p99  failed   "
        "CPU % of one core: workers postgres s3 nats echo producer"
    )
    for count in [int(n) for n in args.workers.split(",") if n]:
        with roles(env, "worker", count, "--workers", str(args.concurrency)) as processes:
            saturated = 0.0
            for phase in ("max", "60%"):
                rows(database_url, "DELETE FROM job_executions")
                rate = None if phase == "max" else max(saturated * 0.6, 1.0)
                before = cpu_by_part([p.pid for p in processes], echo_pid)
                _created, started, ended = asyncio.run(
                    produce(
                        settings,
                        database_url,
                        duration=args.duration,
                        backlog=args.backlog,
                        rate=rate,
                    )
                )
                after = cpu_by_part([p.pid for p in processes], echo_pid)
                _drain(database_url)
                window = rows(
                    database_url,
                    "SELECT extract(epoch FROM started_at - queued_at), status "
                    "FROM job_executions "
                    "WHERE finished_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
                    started,
                    ended,
                )
                starts = [float(r[0]) for r in window if r[0] is not None]
                failed = sum(1 for r in window if r[1] != "succeeded")
                took = ended - started
                done = len(window) / took
                if phase == "max":
                    saturated = done
                cpu = "  ".join(
                    f"{(after[k] - before[k]) / took * 100:4.0f}"
                    for k in ("workers", "postgres", "s3", "nats", "echo", "producer")
                )
                offered = "max" if rate is None else f"{rate:.0f}/s"
                print(
                    f"{count:>7}  {offered:>7}  {done:6.0f}  {done * 60:8.0f}"
                    f"  {percentile(starts, 0.5) * 1000:6.0f} ms"
                    f"  {percentile(starts, 0.99) * 1000:6.0f} ms  {failed:6d}   {cpu}",
                    flush=True,
                )


def _drain(database_url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (left,) = rows(
            database_url,
            "SELECT count(*) FROM job_executions WHERE status IN ('queued','running')",
        )[0]
        if not left:
            return
        time.sleep(0.5)


def measure_scheduler(env: dict[str, str], args: argparse.Namespace, repo: Path) -> None:
    """Every job fires once a minute: at second ``n % 60`` (spread: 167 fires a second
    with 10,000 jobs) or all at second 0 (a burst of 10,000 a minute)."""
    database_url = env["VECRON_DATABASE_URL"]
    jobs = repo / "jobs"
    for n in range(args.jobs):
        second = 0 if args.burst else n % 60
        (jobs / f"tick-{n:05d}.yaml").write_text(TICK.format(n=n, second=second))
    rows(database_url, "DELETE FROM job_executions")
    with roles(env, "scheduler", 1, profile_to=args.profile_scheduler):
        began = time.monotonic()
        vecron(env, "sync", "--repo", str(repo))  # the scheduler takes jobs as they come
        synced = time.time()
        print(f"\nscheduler: {args.jobs} jobs synced in {time.monotonic() - began:.1f} s")
        time.sleep(args.warmup + args.lag_seconds)
    # Measured once every job is in and has fired once (its definition is in memory):
    # the first fires after a start read every definition from the object store.
    fires = rows(
        database_url,
        "SELECT scheduled_at, extract(epoch FROM queued_at - scheduled_at) "
        "FROM job_executions WHERE trigger_source = 'scheduled' "
        "AND scheduled_at > to_timestamp(%s)",
        synced + args.warmup,
    )
    lags = [float(lag) for _, lag in fires]
    shape = "all at second 0" if args.burst else "spread over the minute"
    print(
        f"scheduler: {args.jobs} jobs firing once a minute, {shape}: {len(fires)} fires in "
        f"{args.lag_seconds:.0f} s; fire-to-enqueued p50 {percentile(lags, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(lags, 0.99) * 1000:.0f} ms, max {max(lags, default=0) * 1000:.0f} ms"
    )
    if args.burst:
        bursts: dict[Any, list[float]] = {}
        for at, lag in fires:
            bursts.setdefault(at, []).append(float(lag))
        for at, burst in sorted(bursts.items()):
            print(
                f"  burst {at:%H:%M:%S}: {len(burst)} fires, the last enqueued after "
                f"{max(burst):.2f} s ({len(burst) / max(*burst, 0.001):.0f} fires/s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backlog", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--lag-seconds", type=float, default=60)
    parser.add_argument("--burst", action="store_true", help="every job at second 0")
    parser.add_argument("--warmup", type=float, default=60, help="seconds not measured")
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument(
        "--profile-scheduler", metavar="FILE", help="write the scheduler's cProfile to FILE.0"
    )
    args = parser.parse_args()
    nats_url = os.environ.get("VECRON_TEST_NATS_URL", "nats://127.0.0.1:4222")
    redis_url = os.environ.get("VECRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    stream = f"BENCH{secrets.token_hex(4).upper()}"
    with (
        tempfile.TemporaryDirectory() as folder,
        seaweed_s3_server() as s3,
        throwaway_pg_database() as database_url,
        echo_server() as (url, echo_pid),
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
            measure_workers(env, args, echo_pid)
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
