"""Every role through an outage of NATS, Redis or PostgreSQL, each a private server of
the test's own (tests/services/private.py) so that stopping it disturbs nothing else."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.distributed.cluster import Cluster, wait_for
from tests.runtime.http_target import HttpTarget, free_port
from tests.services.private import private_nats, private_postgres, private_redis
from vecron.webhook.signing import sign

SECOND_JOB = """
name: {name}
schedule:
  type: cron
  expression: "* * * * * ?"
allow_concurrent: true
steps:
  - id: call
    type: http
    config: {{url: "{url}"}}
"""

HOOK_JOB = """
name: hook
triggers:
  webhook:
    enabled: true
    rate_limit: 1000
steps:
  - id: call
    type: http
    config: {{url: "{url}"}}
"""


def settled(cluster: Cluster) -> bool:
    rows = cluster.executions()
    return bool(rows) and all(r["status"] not in ("queued", "running") for r in rows)


def roles_alive(*processes: subprocess.Popen[bytes]) -> bool:
    return all(process.poll() is None for process in processes)


@pytest.fixture
def root(cluster: Cluster) -> Path:
    """Where the private servers keep their data and logs."""
    (cluster.root / "services").mkdir()
    return cluster.root


def test_a_nats_restart_loses_no_run(cluster: Cluster, target: HttpTarget, root: Path) -> None:
    with private_nats(root / "services") as nats:
        cluster.env["VECRON_QUEUE_URL"] = f"{nats.url}?ack_wait=3"
        repo = cluster.write_jobs(
            {"tick": SECOND_JOB.format(name="tick", url=target.url("/status/200"))}
        )
        scheduler = cluster.start("scheduler")
        worker = cluster.start("worker")
        cluster.vecron("sync", "--repo", str(repo))
        assert wait_for(lambda: target.hits("/status/200") >= 3, seconds=30)
        nats.stop()
        time.sleep(4)
        nats.start()
        time.sleep(6)
        assert cluster.stop(scheduler) == 0, cluster.log_of(scheduler)
        # Publishes lost to the outage are swept up from the database.
        assert wait_for(lambda: settled(cluster), seconds=60), cluster.executions()[-3:]
        assert cluster.stop(worker) == 0
    rows = cluster.executions()
    assert {r["status"] for r in rows} == {"succeeded"}
    assert target.hits("/status/200") == len(rows)  # each ran once
    fired = sorted(r["scheduled_at"] for r in rows)
    assert len(fired) == len(set(fired))
    assert (fired[-1] - fired[0]).total_seconds() + 1 == len(fired)  # none missing


def test_with_redis_down_webhooks_answer_503_and_schedulers_wait(
    cluster: Cluster, target: HttpTarget, root: Path
) -> None:
    port = free_port()
    with private_redis(root / "services") as redis_server:
        cluster.env["VECRON_REDIS_URL"] = redis_server.url
        repo = cluster.write_jobs(
            {
                "tick": SECOND_JOB.format(name="tick", url=target.url("/status/200")),
                "hook": HOOK_JOB.format(url=target.url("/raw?body=hooked")),
            }
        )
        cluster.vecron("sync", "--repo", str(repo))
        scheduler = cluster.start("scheduler")
        server = cluster.start("serve", "--port", str(port))
        cluster.start("worker")
        shown = cluster.vecron("webhook", "url", "hook", "--show-secret").stdout.split()
        address, secret = shown[0].replace("8080", str(port)), shown[1]

        def post() -> int:
            body = json.dumps({"n": 1}).encode()
            headers = {"Content-Type": "application/json", **sign(secret, body)}
            return httpx.post(address, content=body, headers=headers, timeout=10).status_code

        assert wait_for(lambda: target.hits("/status/200") >= 2, seconds=30)
        assert wait_for(lambda: _answers(post) == 202, seconds=30)

        redis_server.stop()
        time.sleep(2)  # a tick in flight finishes
        before = len(cluster.executions())
        time.sleep(3)
        assert len(cluster.executions()) == before  # no fire without the locks
        assert post() == 503
        assert roles_alive(scheduler, server)

        redis_server.start()
        assert wait_for(lambda: len(cluster.executions()) > before + 2, seconds=30)
        assert wait_for(lambda: _answers(post) == 202, seconds=30)
    fired = [r["scheduled_at"] for r in cluster.executions() if r["scheduled_at"] is not None]
    assert len(fired) == len(set(fired))  # nothing fired twice
    assert "Redis" in cluster.log_of(scheduler)


def test_every_role_survives_a_postgres_restart(
    cluster: Cluster, target: HttpTarget, root: Path
) -> None:
    port = free_port()
    with private_postgres(root / "services") as postgres:
        cluster.env["VECRON_DATABASE_URL"] = postgres.url
        repo = cluster.write_jobs(
            {"tick": SECOND_JOB.format(name="tick", url=target.url("/status/200"))}
        )
        cluster.vecron("sync", "--repo", str(repo))
        roles = [
            cluster.start("scheduler"),
            cluster.start("worker"),
            cluster.start("serve", "--port", str(port)),
        ]
        assert wait_for(lambda: target.hits("/status/200") >= 2, seconds=30)
        postgres.stop()
        time.sleep(3)
        assert roles_alive(*roles), [cluster.log_of(r)[-2000:] for r in roles]
        postgres.start()
        restarted = time.monotonic()
        hits = target.hits("/status/200")
        assert wait_for(lambda: target.hits("/status/200") >= hits + 3, seconds=40)
        assert wait_for(lambda: _ready(port), seconds=30)
        assert roles_alive(*roles)
        assert time.monotonic() - restarted < 40
        for role in roles:
            assert cluster.stop(role) == 0, cluster.log_of(role)[-3000:]
        rows = cluster.sql(
            "SELECT status, count(*) AS n FROM job_executions GROUP BY status ORDER BY status"
        )
    statuses = {row["status"]: row["n"] for row in rows}
    assert statuses.get("succeeded", 0) >= 4, statuses


def _answers(call: object) -> int:
    try:
        return int(call())  # type: ignore[operator]
    except httpx.HTTPError:
        return 0


def _ready(port: int) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200
