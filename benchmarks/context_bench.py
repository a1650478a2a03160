"""Per step: the cost of persisting the Job Context against a raw object write.

The worker stores ``context.json`` after every step (``vecron.runtime.context.save``:
encode the context, then ``objects.put``). This measures one save of a realistic
context (the initial context of a job plus N http steps whose JSON responses carry M
orders: about 1 KB to 50 KB) against ``objects.put`` of the same bytes, precomputed, to
the same path (each write replaces the object, as the worker's do). The embedded local
directory store, and with VECRON_OBJECT_STORE_URL set that store too (under a
throw-away prefix).
Also printed: the encoding alone (``to_json``) and, as a hint, the same document through
``json.dumps`` without ``indent`` (the C encoder).

Goal (issue 4): save <= 1.5x the raw write. Figures only, no timed asserts.

    .venv/bin/python benchmarks/context_bench.py [--cases 1x0,1x1,2x4,5x4,10x4]
        [--iterations 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from vecron import paths  # noqa: E402
from vecron.backends.database import ExecutionRecord, TriggerSource  # noqa: E402
from vecron.backends.objectstore import ObjectStore, open_object_store  # noqa: E402
from vecron.runtime import context as job_context  # noqa: E402
from vecron.spec.models import Job  # noqa: E402

GOAL_RATIO = 1.5

DEFINITION = {
    "name": "context-bench",
    "description": "Partner orders: fetch, enrich, post",
    "labels": {"team": "integrations", "tier": "gold"},
    "variables": {"REGION": "eu", "LIMIT": 50},
    "steps": [
        {"id": "fetch", "type": "http", "config": {"url": "https://api.example.invalid/orders"}}
    ],
}


def order(index: int) -> dict[str, Any]:
    return {
        "id": 100_000 + index,
        "customer": {"id": 4711 + index, "name": f"Công ty TNHH Vecron {index}", "tier": "gold"},
        "status": "confirmed" if index % 3 else "pending",
        "created_at": f"2026-03-{index % 28 + 1:02d}T08:{index % 60:02d}:00Z",
        "items": [
            {"sku": f"A-{index:03d}-{line}", "qty": line + 1, "price": 19.5 * (line + 1)}
            for line in range(3)
        ],
        "total": 117.0,
        "notes": None,
    }


def realistic_context(steps: int, orders: int) -> dict[str, Any]:
    """The context after ``steps`` http steps, each answered with ``orders`` orders."""
    job = Job.model_validate(DEFINITION)
    started = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
    record = ExecutionRecord(
        job_id="01JBENCH000000000000000000",
        job_name=job.name,
        definition_hash="0" * 64,
        trigger_source=TriggerSource.MANUAL,
    )
    context = job_context.initial_context(
        job=job,
        job_id=record.job_id,
        execution=record,
        variables=job.variables,
        started_at=started,
    )
    for step in range(steps):
        page = [order(step * orders + i) for i in range(orders)]
        body = {"page": step + 1, "count": orders, "orders": page}
        output = {
            "status": 200,
            "headers": {
                "content-type": "application/json",
                "date": "Sat, 14 Mar 2026 08:00:00 GMT",
                "x-request-id": uuid.UUID(int=step).hex,
            },
            "body": body,
        }
        context["steps"][f"step_{step:02d}"] = job_context.step_entry(
            step_type="http",
            status="succeeded",
            started_at=started + timedelta(seconds=step),
            completed_at=started + timedelta(seconds=step, milliseconds=35),
            output=output,
            error=None,
        )
    return context


def compact_json(context: dict[str, Any]) -> bytes:
    document = {"version": job_context.CONTEXT_VERSION, **context}
    return json.dumps(document, ensure_ascii=False, default=str).encode()


async def per_call_us(call: Callable[[], Awaitable[object]], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        await call()
    return (time.perf_counter() - started) / iterations * 1e6


def sync_per_call_us(call: Callable[[], object], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        call()
    return (time.perf_counter() - started) / iterations * 1e6


async def measure(
    objects: ObjectStore, steps: int, orders: int, iterations: int, rounds: int
) -> dict[str, float]:
    context = realistic_context(steps, orders)
    data = job_context.to_json(context)
    path = paths.context_path("01JBENCH000000000000000000", f"01JBENCHRUN{steps:07d}X{orders:07d}")

    async def raw() -> None:
        await objects.put(path, data, content_type="application/json")

    async def save() -> None:
        await job_context.save(objects, path, context)

    await raw()
    await save()
    raws, saves, encodes, compacts = [], [], [], []
    for _ in range(rounds):  # interleaved, so that drift hits all alike
        raws.append(await per_call_us(raw, iterations))
        saves.append(await per_call_us(save, iterations))
        encodes.append(sync_per_call_us(lambda: job_context.to_json(context), iterations))
        compacts.append(sync_per_call_us(lambda: compact_json(context), iterations))
    stored = await objects.get(path)
    assert stored == data, "the saved context differs from to_json's bytes"
    return {
        "bytes": len(data),
        "raw": statistics.median(raws),
        "save": statistics.median(saves),
        "encode": statistics.median(encodes),
        "compact": statistics.median(compacts),
        "compact_bytes": len(compact_json(context)),
    }


async def bench_store(
    label: str, objects: ObjectStore, cases: list[tuple[int, int]], args: argparse.Namespace
) -> list[float]:
    print(f"{label}: {objects.describe()}")
    header = (
        f"{'steps':>5} {'orders':>6} {'bytes':>7} {'put us':>8} {'save us':>8} {'ratio':>6} "
        f"{'to_json us':>10} {'compact us':>10} {'compact bytes':>13}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for steps, orders in cases:
        r = await measure(objects, steps, orders, args.iterations, args.rounds)
        ratio = r["save"] / r["raw"]
        ratios.append(ratio)
        print(
            f"{steps:>5} {orders:>6} {r['bytes']:>7.0f} {r['raw']:>8.0f} {r['save']:>8.0f} "
            f"{ratio:>5.2f}x {r['encode']:>10.0f} {r['compact']:>10.0f} {r['compact_bytes']:>13.0f}"
        )
    print(f"save / raw put: {min(ratios):.2f}x - {max(ratios):.2f}x (goal <= {GOAL_RATIO}x)")
    print()
    return ratios


async def bench_main(args: argparse.Namespace) -> None:
    cases = []
    for item in args.cases.split(","):
        steps, _, orders = item.strip().partition("x")
        cases.append((int(steps), int(orders or 4)))
    print(
        f"median of {args.rounds} rounds of {args.iterations} sequential calls each; "
        "orders: orders in each step's response; compact: json.dumps without indent "
        "(the C encoder), for comparison"
    )
    print()
    with tempfile.TemporaryDirectory() as tmp:
        local = open_object_store((Path(tmp) / "objects").as_uri())
        try:
            await bench_store("local directory", local, cases, args)
        finally:
            await local.close()
    url = os.environ.get("VECRON_OBJECT_STORE_URL")
    if url:
        remote = open_object_store(url)
        try:
            await bench_store("VECRON_OBJECT_STORE_URL", remote, cases, args)
        finally:
            await remote.delete_prefix("jobs/01JBENCH000000000000000000/")
            await remote.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cases",
        default="1x0,1x1,2x4,5x4,10x4",
        help="contexts as STEPSxORDERS: steps, and orders in each step's response "
        "(the defaults make about 1, 2, 11, 27 and 53 KB)",
    )
    parser.add_argument("--iterations", type=int, default=200, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(bench_main(args))


if __name__ == "__main__":
    main()
