"""Runs per second, embedded: a two-step HTTP job triggered by hand at rising rates.

The job POSTs a JSON order to a local echo server, then GETs with a query that takes a
value from the first response (``{{steps.a.response.body.body.run}}``). Runs are started
as the API will start them (``create_execution`` + ``enqueue`` in-process, one task per
request) at each offered rate for ``--duration`` seconds; offers are dropped while
``--max-backlog`` runs wait, and ``max`` keeps 4 x concurrency runs waiting. The real
``Worker.run`` loop (plus the sweeper, as ``vecron up`` wires them; logs at ``info``
to a file) runs them on the embedded stores (SQLite and a local directory in a temp
dir; set VECRON_DATABASE_URL / VECRON_OBJECT_STORE_URL to measure others). The echo
server is uvicorn + Starlette in a subprocess, so it does not share the GIL with vecron.

Per rate it prints: runs completed per second over the window, start-to-finish latency
p50/p99 (the execution row's ``queued_at`` to ``finished_at``), the trigger's own p99,
failures, runs not offered, CPU of vecron and of the server (% of one core), and RSS
(the highest current RSS sampled in the window, and ``ru_maxrss``). Every run must be
recorded; a sample of contexts is read back and checked (the second request carried
the value of the first response). Then, for the next engineer: one run's time by call
(store calls, steps and context encoding, runs one at a time) and a cProfile.

Goal (issue 4): at least twice n8n 2.8 on SQLite, which completes 120-150 such runs/s
on this machine: >= 300 runs/s, under 200 MB RSS. Figures only, no timed asserts.

    .venv/bin/python benchmarks/runtime_bench.py [--rates 50,100,200,400,max]
        [--duration 10] [--concurrency 16] [--max-backlog 250] [--profile-runs 200]
        [--breakdown-runs 200] [--log-level info]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import inspect
import io
import json
import logging
import os
import pstats
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from vecron.backends.database import ExecutionStatus, TriggerSource  # noqa: E402
from vecron.backends.queue import MemoryQueue  # noqa: E402
from vecron.reconciler.plan import SyncOptions  # noqa: E402
from vecron.reconciler.sources import DirectorySource  # noqa: E402
from vecron.reconciler.sync import sync_once  # noqa: E402
from vecron.runtime import context as job_context  # noqa: E402
from vecron.runtime.steps.http import HttpStepExecutor  # noqa: E402
from vecron.runtime.trigger import create_execution  # noqa: E402
from vecron.runtime.up import Sweeper  # noqa: E402
from vecron.runtime.worker import Worker, enqueue  # noqa: E402
from vecron.settings import Settings  # noqa: E402
from vecron.stores import Stores, open_stores  # noqa: E402

N8N_RUNS_PER_SECOND = (120.0, 150.0)
GOAL_RUNS_PER_SECOND = 2 * N8N_RUNS_PER_SECOND[1]
GOAL_RSS_MB = 200.0
JOB_NAME = "bench-two-steps"
CONTEXT_SAMPLE = 20

JOB = """\
name: {name}
description: Two HTTP steps; the second uses a value from the first response
allow_concurrent: true
variables:
  API: "{api}"
  REGION: eu
steps:
  - id: a
    type: http
    config:
      method: POST
      url: "${{API}}/echo"
      body:
        run: "{{{{execution.id}}}}"
        region: "${{REGION}}"
        customer: {{id: 4711, name: "Công ty TNHH Vecron", tier: gold}}
        items:
          - {{sku: A-100, qty: 2, price: 19.5}}
          - {{sku: B-220, qty: 1, price: 240.0}}
          - {{sku: C-310, qty: 12, price: 1.25}}
  - id: b
    type: http
    config:
      method: GET
      url: "${{API}}/echo"
      query:
        run: "{{{{steps.a.response.body.body.run}}}}"
        customer: "{{{{steps.a.response.body.body.customer.id}}}}"
"""


# --- the echo server (a subprocess) ------------------------------------------------


def serve() -> None:
    """Serve ``/echo`` on a free loopback port (printed first) until killed."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        body = await request.json() if request.method == "POST" else None
        return JSONResponse(
            {"method": request.method, "query": dict(request.query_params), "body": body}
        )

    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections
    # only when the listening socket says TCP, and with Nagle on every response waits
    # for a delayed ACK (about 40 ms on loopback).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", backlog=1024
    )
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """Start the echo server in a subprocess; yields (base URL, its pid)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = f"http://127.0.0.1:{int(process.stdout.readline())}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{url}/echo", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the echo server did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


# --- measuring ---------------------------------------------------------------------


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all threads) or of ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(slots=True)
class PhaseResult:
    label: str
    offered: float | None
    created: int = 0
    shed: int = 0
    completed_in_window: int = 0
    window_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    trigger_seconds: list[float] = field(default_factory=list)
    failures: int = 0
    unrecorded: int = 0
    unfinished: int = 0
    contexts_checked: int = 0
    contexts_bad: int = 0
    cpu_percent: float = 0.0
    server_cpu_percent: float = 0.0
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.completed_in_window / self.window_seconds if self.window_seconds else 0.0


@dataclass(slots=True)
class Offered:
    """What one offering window did: its runs, the offers dropped, its bounds."""

    started: float
    ended: float = 0.0
    count: int = 0
    shed: int = 0
    ids: list[str] = field(default_factory=list)
    trigger_seconds: list[float] = field(default_factory=list)


class Bench:
    """The stores, queue, worker and sweeper of one ``vecron up``-like process."""

    def __init__(self, stores: Stores, concurrency: int) -> None:
        self.stores = stores
        self.queue = MemoryQueue()
        self.http = HttpStepExecutor()
        self.sweeper = Sweeper(stores, self.queue)
        self.settled_at: dict[str, float] = {}
        self.settled_count = 0
        self.settled = asyncio.Event()
        self.worker = Worker(
            stores=stores,
            queue=self.queue,
            executors={"http": self.http},
            concurrency=concurrency,
            on_settled=self._on_settled,
        )

    def _on_settled(self, execution_id: str) -> None:
        self.sweeper.settled(execution_id)
        self.settled_at[execution_id] = time.perf_counter()
        self.settled_count += 1
        self.settled.set()

    async def trigger(self) -> str:
        """What the API's manual trigger does: record the execution, then enqueue it."""
        record = await create_execution(
            self.stores.database, JOB_NAME, trigger_source=TriggerSource.MANUAL
        )
        self.sweeper.known.add(record.execution_id)
        await enqueue(self.queue, record)
        return record.execution_id

    async def offer(
        self,
        *,
        rate: float | None,
        duration: float,
        max_backlog: int,
        max_runs: int | None = None,
    ) -> Offered:
        """Trigger runs at ``rate`` per second (None: keep the workers busy) for
        ``duration`` seconds, each in its own task as concurrent API requests are."""
        offered = Offered(started=time.perf_counter())
        tasks: set[asyncio.Task[None]] = set()
        keep_busy = 4 * self.worker.concurrency
        end = offered.started + duration
        index = 0
        settled_before = self.settled_count

        async def trigger() -> None:
            began = time.perf_counter()
            offered.ids.append(await self.trigger())
            offered.trigger_seconds.append(time.perf_counter() - began)

        while True:
            now = time.perf_counter()
            if now >= end or (max_runs is not None and offered.count >= max_runs):
                break
            backlog = offered.count - (self.settled_count - settled_before)
            if rate is None:
                if backlog >= keep_busy:
                    self.settled.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.settled.wait(), timeout=end - now)
                    continue
            else:
                due = offered.started + index / rate
                if now < due:
                    await asyncio.sleep(due - now)
                    continue
                index += 1
                if backlog >= max_backlog:
                    offered.shed += 1
                    continue
            offered.count += 1
            task = asyncio.create_task(trigger())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if rate is None:
                await asyncio.sleep(0)  # let the trigger start, as a request would
        offered.ended = time.perf_counter()
        await asyncio.gather(*tasks)
        return offered

    async def wait_settled(self, ids: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while any(i not in self.settled_at for i in ids):
            if time.perf_counter() > deadline:
                return
            await asyncio.sleep(0.05)


async def sample_rss(peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], current_rss_mb())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.25)


async def run_phase(
    bench: Bench,
    label: str,
    rate: float | None,
    args: argparse.Namespace,
    server_pid: int,
) -> PhaseResult:
    result = PhaseResult(label=label, offered=rate)
    rss = [current_rss_mb()]
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(rss, stop_sampling))
    cpu0, server0, wall0 = cpu_seconds(), cpu_seconds(server_pid), time.perf_counter()
    offered = await bench.offer(rate=rate, duration=args.duration, max_backlog=args.max_backlog)
    ids, result.shed, started, ended = offered.ids, offered.shed, offered.started, offered.ended
    result.trigger_seconds = offered.trigger_seconds
    result.created = len(ids)
    result.window_seconds = ended - started
    result.completed_in_window = sum(
        1 for i in ids if started <= bench.settled_at.get(i, float("inf")) <= ended
    )
    cpu1, server1, wall1 = cpu_seconds(), cpu_seconds(server_pid), time.perf_counter()
    result.cpu_percent = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    result.server_cpu_percent = 100 * (server1 - server0) / (wall1 - wall0)
    await bench.wait_settled(ids, timeout=args.drain_timeout)
    stop_sampling.set()
    await sampler
    result.rss_mb = rss[0]
    result.peak_rss_mb = peak_rss_mb()

    database = bench.stores.database
    for execution_id in ids:
        try:
            record = await database.get_execution(execution_id)
        except LookupError:
            result.unrecorded += 1
            continue
        status = str(record.status)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if record.finished_at is None:
            result.unfinished += 1
            continue
        if record.status != ExecutionStatus.SUCCEEDED:
            result.failures += 1
        result.latencies.append((record.finished_at - record.queued_at).total_seconds())
    for execution_id in random.Random(7).sample(ids, min(CONTEXT_SAMPLE, len(ids))):
        result.contexts_checked += 1
        if not await context_ok(bench.stores, execution_id):
            result.contexts_bad += 1
    return result


async def context_ok(stores: Stores, execution_id: str) -> bool:
    """The stored context has both steps, and the second carried the first's value."""
    record = await stores.database.get_execution(execution_id)
    if record.minio_context_path is None:
        return False
    context = json.loads(await stores.objects.get(record.minio_context_path))
    steps = context.get("steps", {})
    if [steps.get(s, {}).get("status") for s in ("a", "b")] != ["succeeded", "succeeded"]:
        return False
    query = steps["b"]["output"]["body"]["query"]
    return query == {"run": execution_id, "customer": "4711"}


class Timed:
    """A proxy that adds the wall time of each awaited method call to ``totals``."""

    def __init__(self, inner: Any, prefix: str, totals: Counter[str]) -> None:
        self._inner = inner
        self._prefix = prefix
        self._totals = totals

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        key = f"{self._prefix}.{name}"
        totals = self._totals

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await attribute(*args, **kwargs)
            finally:
                totals[key] += time.perf_counter() - started

        return timed


async def breakdown(stores: Stores, runs: int) -> str:
    """Run ``runs`` runs one after the other with every store call, step and context
    encoding timed: where one run's time goes, without contention."""
    totals: Counter[str] = Counter()
    timed_stores = dataclasses.replace(
        stores,
        database=Timed(stores.database, "database", totals),
        objects=Timed(stores.objects, "objects", totals),
    )
    bench = Bench(timed_stores, 1)  # type: ignore[arg-type]
    bench.worker.executors = {"http": Timed(bench.http, "http step", totals)}
    encode = job_context.to_json

    def timed_encode(context: Any) -> bytes:
        started = time.perf_counter()
        try:
            return encode(context)
        finally:
            totals["context.to_json"] += time.perf_counter() - started

    async def one() -> None:
        await bench.trigger()
        (delivery,) = await bench.queue.fetch(batch=1, timeout_seconds=1)
        await bench.worker.process(delivery)

    for _ in range(10):
        await one()
    totals.clear()
    job_context.to_json = timed_encode
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(runs):
            await one()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        job_context.to_json = encode
        await bench.http.close()
    lines = [
        f"one run at a time, {runs} runs: {wall / runs * 1000:.2f} ms wall, "
        f"{cpu / runs * 1000:.2f} ms CPU (all threads) per run "
        f"-> at most {runs / cpu:.0f} runs/s on one core",
        f"{'operation':<36} {'ms/run':>7} {'share':>6}",
    ]
    for name, seconds in totals.most_common():
        lines.append(f"{name:<36} {seconds / runs * 1000:>7.2f} {seconds / wall:>6.1%}")
    other = wall - sum(totals.values())
    lines.append(
        f"{'rest (worker, queue, loop)':<36} {other / runs * 1000:>7.2f} {other / wall:>6.1%}"
    )
    return "\n".join(lines)


async def profile_runs(bench: Bench, runs: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    ids = (await bench.offer(rate=None, duration=120, max_backlog=10**6, max_runs=runs)).ids
    await bench.wait_settled(ids, timeout=60)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(
        f"cProfile of {len(ids)} runs (as fast as possible; main thread only; cumulative "
        "times of coroutines count every resumption, so read them as relative weights)\n"
    )
    stats.sort_stats("cumulative").print_stats(r"/vecron/", 15)
    stats.sort_stats("tottime").print_stats(40)
    return out.getvalue()


def print_table(results: list[PhaseResult], args: argparse.Namespace) -> None:
    print(
        f"concurrency {args.concurrency}, {args.duration:g} s a rate, backlog cap "
        f"{args.max_backlog}, log level {args.log_level}"
    )
    print(
        "offered/s: runs offered a second (max: 4 x concurrency kept waiting); created: runs "
        "recorded; shed: offers dropped with the backlog full; done/s: runs finished in the "
        "window / its length; p50/p99: queued_at to finished_at; trig99: p99 of "
        "create_execution + enqueue; cpu%/srv%: vecron / echo server, of one core"
    )
    print(
        f"backends: {os.environ.get('VECRON_DATABASE_URL', 'sqlite')}, "
        f"{os.environ.get('VECRON_OBJECT_STORE_URL', 'local directory')}, memory queue"
    )
    header = (
        f"{'offered/s':>9} {'created':>7} {'shed':>5} {'done/s':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'trig99':>7} {'fail':>5} {'unrec':>5} {'ctx ok':>7} {'cpu%':>5} "
        f"{'srv%':>5} {'rss MB':>7} {'maxrss':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        lat = [x * 1000 for x in r.latencies]
        trig = [x * 1000 for x in r.trigger_seconds]
        print(
            f"{r.label:>9} {r.created:>7} {r.shed:>5} {r.throughput:>7.1f} "
            f"{percentile(lat, 0.5):>8.1f} {percentile(lat, 0.99):>8.1f} "
            f"{percentile(trig, 0.99):>7.1f} "
            f"{r.failures + r.unfinished:>5} {r.unrecorded:>5} "
            f"{r.contexts_checked - r.contexts_bad:>3}/{r.contexts_checked:<3} "
            f"{r.cpu_percent:>5.0f} {r.server_cpu_percent:>5.0f} {r.rss_mb:>7.1f} "
            f"{r.peak_rss_mb:>7.1f}"
        )
    odd = [r for r in results if set(r.statuses) - {"succeeded"}]
    for r in odd:
        print(f"  {r.label}: statuses {r.statuses}")
    best = max(results, key=lambda r: r.throughput)
    low, high = N8N_RUNS_PER_SECOND
    peak = max(r.peak_rss_mb for r in results)
    print()
    print(
        f"best sustained rate     {best.throughput:7.1f} runs/s (offered {best.label}), "
        f"p50 {statistics.median(best.latencies) * 1000 if best.latencies else 0:.1f} ms"
    )
    print(
        f"vs n8n 2.8 (120-150/s)  {best.throughput / high:5.2f}x - {best.throughput / low:5.2f}x"
        f"   (goal >= 2x, i.e. >= {GOAL_RUNS_PER_SECOND:.0f} runs/s)"
    )
    print(f"peak RSS                {peak:7.1f} MB   (goal < {GOAL_RSS_MB:.0f} MB; n8n 700-900 MB)")


async def bench_main(args: argparse.Namespace) -> None:
    rates: list[tuple[str, float | None]] = []
    for item in args.rates.split(","):
        label = item.strip()
        rates.append((label, None) if label == "max" else (label, float(label)))
    with tempfile.TemporaryDirectory() as tmp, echo_server() as (api, server_pid):
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            filename=Path(tmp) / "vecron.log",
        )
        repo = Path(tmp) / "repo"
        (repo / "jobs").mkdir(parents=True)
        (repo / "jobs" / "bench.yaml").write_text(JOB.format(name=JOB_NAME, api=api), "utf-8")
        settings = Settings.from_env(home=Path(tmp) / "home")
        async with open_stores(settings) as stores:
            await sync_once(DirectorySource(repo), stores, SyncOptions())
            bench = Bench(stores, args.concurrency)
            stop = asyncio.Event()
            working = asyncio.create_task(bench.worker.run(stop))
            sweeping = asyncio.create_task(bench.sweeper.run(stop))
            try:
                # Warm up: connections, caches, the first SQLite pages.
                warm = await bench.offer(rate=None, duration=5, max_backlog=64, max_runs=100)
                await bench.wait_settled(warm.ids, timeout=30)
                results = []
                for label, rate in rates:
                    results.append(await run_phase(bench, label, rate, args, server_pid))
                    print(
                        f"  ... {label:>4}/s: {results[-1].throughput:.1f} runs/s",
                        file=sys.stderr,
                        flush=True,
                    )
                profile = await profile_runs(bench, args.profile_runs) if args.profile_runs else ""
                where = await breakdown(stores, args.breakdown_runs) if args.breakdown_runs else ""
            finally:
                stop.set()
                await asyncio.gather(working, sweeping, return_exceptions=True)
                await bench.http.close()
    print_table(results, args)
    if where:
        print()
        print(where)
    if profile:
        print()
        print(profile)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="50,100,200,400,max", help="runs/s, or max")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds a rate")
    parser.add_argument("--concurrency", type=int, default=16, help="the worker's runs in flight")
    parser.add_argument(
        "--max-backlog", type=int, default=250, help="runs waiting before offers are dropped"
    )
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--profile-runs", type=int, default=200, help="0: no profile")
    parser.add_argument(
        "--breakdown-runs", type=int, default=200, help="sequential runs timed by call; 0: none"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning"),
        help="as `vecron up --log-level` (lines go to a file in the temp dir)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    asyncio.run(bench_main(args))


if __name__ == "__main__":
    main()
