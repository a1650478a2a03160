"""Webhook throughput: refusals and accepted deliveries against a bare Starlette endpoint.

Everything runs as a user would run it, each server one uvicorn worker in its own
process, driven by ``wrk`` (Debian's package ``wrk``) over loopback with the same
1 KiB JSON body:

- ``bare``: a Starlette app whose one route reads the body and answers 200 (the floor);
- ``vecron serve`` on the embedded stores (SQLite, a local directory, the in-process
  queue) with three synced jobs, for: a bad signature (401), a valid signature over
  the job's rate limit (429), and accepted deliveries (202), each one an execution row
  committed to SQLite and a message in the queue;
- ``vecron up`` (the same, plus a worker) for webhook-started runs of a two-step HTTP
  job against a local echo server, with one client and with eight: completed runs per
  second and the latency from the request to the end of the second step.

Goal (issue 5): the refusal paths at >= 0.5 of the bare endpoint (about 24k requests/s
here), accepted deliveries as fast as can be (reported with the ratio), and webhook-
started runs at least twice n8n 2.8 (120-150 completed runs/s; 10 ms p50 from request to
second step with one client, 65 ms with eight). Figures only, no timed asserts.

    .venv/bin/python benchmarks/webhook_bench.py [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

BARE_GOAL_RATIO = 0.5
N8N_RUNS_PER_SECOND = (120.0, 150.0)
PAYLOAD = json.dumps(
    {
        "event": "order.created",
        "order": {"id": 4711, "customer": "Công ty TNHH Vecron", "lines": ["A-100"] * 60},
        "pad": "x" * 300,
    }
).encode()[:1024]
PAYLOAD = PAYLOAD + b" " * (1024 - len(PAYLOAD))  # JSON allows trailing whitespace
SECRET = "bench-secret-" + "s" * 24

JOBS = {
    "accept.yaml": f"""\
name: accept
allow_concurrent: true
triggers:
  webhook: {{secret: "{SECRET}", schemes: [github], rate_limit: null}}
steps:
  - {{id: a, type: http, config: {{url: "${{API}}/echo"}}}}
""",
    "limited.yaml": f"""\
name: limited
allow_concurrent: true
triggers:
  webhook: {{secret: "{SECRET}", schemes: [github], rate_limit: 1}}
steps:
  - {{id: a, type: http, config: {{url: "${{API}}/echo"}}}}
""",
    "two-steps.yaml": f"""\
name: two-steps
allow_concurrent: true
triggers:
  webhook: {{secret: "{SECRET}", schemes: [github], rate_limit: null}}
steps:
  - id: a
    type: http
    config:
      method: POST
      url: "${{API}}/echo"
      body: {{event: "{{{{webhook.payload.event}}}}", order: "{{{{webhook.payload.order.id}}}}"}}
  - id: b
    type: http
    config:
      url: "${{API}}/echo"
      query: {{order: "{{{{steps.a.response.body.body.order}}}}"}}
""",
}


# -- servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_bare(port: int) -> None:
    """The floor: read the body, answer a small JSON 200."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/bare", bare, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A server process whose output goes to ``log`` (a pipe nobody reads would fill up
    and stop it)."""
    with open(log, "a") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url}: the server exited: {proc.stderr.read() if proc.stderr else ''}"
            )
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def vecron_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
    return {**env, "VECRON_HOME": str(home)}


def vecron(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        env=vecron_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


# -- load ---------------------------------------------------------------------------


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = "{signature}"
local f = io.open("{body_file}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def wrk(
    url: str, signature: str, body_file: Path, *, duration: float, connections: int
) -> dict[str, Any]:
    script = body_file.with_suffix(f".{abs(hash(signature)) % 10**6}.lua")
    script.write_text(WRK_SCRIPT.format(signature=signature, body_file=body_file))
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    other = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses = {"2xx": total - (int(other.group(1)) if other else 0)}
    if other:
        statuses["other"] = int(other.group(1))
    p50 = re.search(r"50%\s+([\d.]+)(\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    return {"rate": rate, "statuses": statuses, "p50": _ms(p50), "p99": _ms(p99)}


def probe(url: str, signature: str, body: bytes) -> int:
    """The status one request of a phase gets (wrk only counts non-2xx answers)."""
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    return httpx.post(url, content=body, headers=headers, timeout=10).status_code


def _ms(match: re.Match[str] | None) -> float:
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def github_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


# -- end to end ---------------------------------------------------------------------


async def end_to_end(url: str, echo_port: int, clients: int, duration: float) -> dict[str, Any]:
    """Clients each POST a signed delivery with a token of its own and wait until the
    run's second step reaches the echo server (served here, on this loop) with it."""
    import uuid

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    arrived: dict[str, asyncio.Event] = {}

    async def echo(request: Request) -> JSONResponse:
        body = await request.json() if request.method == "POST" else None
        order = request.query_params.get("order")
        if order in arrived:
            arrived[order].set()
        return JSONResponse({"query": dict(request.query_params), "body": body})

    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=echo_port, log_level="warning", access_log=False)
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(measure: bool) -> None:
            nonlocal failures
            token = uuid.uuid4().hex
            body = json.dumps({"event": "order.created", "order": {"id": token}}).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": github_signature(body),
            }
            arrived[token] = asyncio.Event()
            started = time.monotonic()
            response = await client.post(url, content=body, headers=headers)
            if response.status_code != 202:
                failures += 1
                del arrived[token]
                return
            try:
                await asyncio.wait_for(arrived[token].wait(), timeout=30)
            except TimeoutError:
                failures += 1
                return
            finally:
                del arrived[token]
            if measure:
                latencies.append((time.monotonic() - started) * 1000)

        for _ in range(20):  # warm up: connections, caches, the worker's HTTP client
            await one(False)
        stop = time.monotonic() + duration

        async def one_client() -> None:
            while time.monotonic() < stop:
                await one(True)

        began = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        took = time.monotonic() - began
    server.should_exit = True
    await serving
    latencies.sort()
    return {
        "runs": len(latencies) / took,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan"),
        "failures": failures,
        "n": len(latencies),
    }


# -- main ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--e2e-duration", type=float, default=10.0)
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="vecron-webhook-bench-") as scratch:
        root = Path(scratch)
        home, repo = root / "home", root / "repo"
        repo.mkdir()
        echo_port, bare_port, vecron_port = free_port(), free_port(), free_port()
        (repo / "variables.yaml").write_text(f"API: http://127.0.0.1:{echo_port}\n")
        for name, text in JOBS.items():
            (repo / name).write_text(text)
        vecron(home, "sync", "--repo", str(repo))
        ids = {
            name: vecron(home, "webhook", "url", name).rsplit("/", 1)[1]
            for name in ("accept", "limited", "two-steps")
        }
        body_file = root / "body.json"
        body_file.write_bytes(PAYLOAD)
        good = github_signature(PAYLOAD)
        bad = "sha256=" + "0" * 64
        me = [sys.executable, str(Path(__file__).resolve())]
        load = {"duration": args.duration, "connections": args.connections}
        results: dict[str, dict[str, Any]] = {}
        with process([*me, "--serve-bare", str(bare_port)], root / "bare.log") as bare:
            wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
            results["bare Starlette endpoint"] = wrk(
                f"http://127.0.0.1:{bare_port}/bare", good, body_file, **load
            )
        serve = [
            sys.executable,
            "-m",
            "vecron",
            "serve",
            "--port",
            str(vecron_port),
            "--log-level",
            "warning",
        ]
        base = f"http://127.0.0.1:{vecron_port}"
        with process(serve, root / "serve.log", vecron_env(home)) as server:
            wait_ready(f"{base}/healthz", server)
            phases = [
                ("401 bad signature", ids["accept"], bad),
                ("429 over the rate limit", ids["limited"], good),
                ("202 accepted (recorded + queued)", ids["accept"], good),
            ]
            for name, webhook_id, signature in phases:
                url = f"{base}/webhooks/{webhook_id}"
                probe(url, signature, PAYLOAD)  # the limited job's one allowed delivery
                status = probe(url, signature, PAYLOAD)
                results[name] = wrk(url, signature, body_file, **load)
                results[name]["probe"] = status
        with contextlib.closing(sqlite3.connect(home / "vecron.db")) as db:
            (recorded,) = db.execute(
                "SELECT count(*) FROM job_executions WHERE job_name = 'accept'"
                " AND trigger_source = 'webhook'"
            ).fetchone()
        # A home of its own: the serve phase left thousands of queued runs behind.
        e2e_home = root / "e2e-home"
        vecron(e2e_home, "sync", "--repo", str(repo))
        e2e_id = vecron(e2e_home, "webhook", "url", "two-steps").rsplit("/", 1)[1]
        up = [
            sys.executable,
            "-m",
            "vecron",
            "up",
            str(repo),
            "--port",
            str(vecron_port),
            "--log-level",
            "warning",
            "--workers",
            "16",
        ]
        with process(up, root / "up.log", vecron_env(e2e_home)) as upper:
            wait_ready(f"{base}/healthz", upper)
            e2e = {
                clients: asyncio.run(
                    end_to_end(
                        f"{base}/webhooks/{e2e_id}",
                        echo_port,
                        clients,
                        args.e2e_duration,
                    )
                )
                for clients in (1, 8)
            }

    floor = results["bare Starlette endpoint"]["rate"]
    print(
        f"wrk: 1 thread, {args.connections} connections, {args.duration:g} s each; 1 KiB JSON body"
    )
    print(f"{'path':36} {'req/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}  answers")
    print("-" * 90)
    for name, result in results.items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(result["statuses"].items()))
        if "probe" in result:
            statuses += f" (a probe got {result['probe']})"
        print(
            f"{name:36} {result['rate']:9.0f} {result['rate'] / floor:6.2f} "
            f"{result['p50']:7.2f} {result['p99']:7.2f}  {statuses}"
        )
    print()
    accepted = results["202 accepted (recorded + queued)"]["statuses"].get("2xx", 0)
    print(
        f"accepted deliveries answered 2xx: {accepted} (+2 probes); "
        f"execution rows in SQLite: {recorded}"
    )
    print(f"refusals goal: >= {BARE_GOAL_RATIO} of the bare endpoint")
    print()
    print("webhook-started two-step runs (vecron up, embedded), request to end of the second step")
    print(f"{'clients':>7} {'runs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
    for clients, result in e2e.items():
        print(
            f"{clients:7d} {result['runs']:8.1f} {result['p50']:8.1f} {result['p99']:8.1f} "
            f"{result['failures']:6d}"
        )
    low, high = N8N_RUNS_PER_SECOND
    best = max(result["runs"] for result in e2e.values())
    print(
        f"vs n8n 2.8 ({low:.0f}-{high:.0f} runs/s; 10 ms p50 with one client, 65 ms with eight): "
        f"{best / high:.2f}x-{best / low:.2f}x (goal >= 2x)"
    )


if __name__ == "__main__":
    main()
