"""Workers on NATS + PostgreSQL + S3: a killed worker's run completes once, resumed
after its finished steps; a stopped worker finishes or hands back its runs; a run that
keeps killing its workers ends in the dead letter and `vecron retry` runs it again."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.distributed.cluster import Cluster, wait_for
from tests.distributed.conftest import delete_streams, stream_url
from tests.runtime.http_target import HttpTarget


def three_steps(target: HttpTarget, *, slow_seconds: float) -> str:
    return f"""
name: three-steps
steps:
  - id: first
    type: http
    config: {{url: "{target.url("/status/200")}"}}
  - id: slow
    type: http
    config: {{url: "{target.url(f"/slow?seconds={slow_seconds}")}", timeout_seconds: 60}}
  - id: last
    type: http
    config: {{url: "{target.url("/raw?body=done")}"}}
"""


def final(cluster: Cluster) -> list[dict[str, object]]:
    return [row for row in cluster.executions() if row["status"] not in ("queued", "running")]


def test_a_worker_killed_mid_step_still_completes_the_run_once(
    cluster: Cluster, target: HttpTarget
) -> None:
    repo = cluster.write_jobs({"three-steps": three_steps(target, slow_seconds=3)})
    cluster.vecron("sync", "--repo", str(repo))
    doomed = cluster.start("worker", "--lease", "2s")
    execution_id = cluster.vecron("trigger", "three-steps").stdout.split()[0]
    assert wait_for(lambda: target.hits("/slow") == 1, seconds=30), cluster.log_of(doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    cluster.start("worker", "--lease", "2s")
    assert wait_for(lambda: len(final(cluster)) == 1, seconds=60)
    (row,) = cluster.executions()
    assert row["execution_id"] == execution_id
    assert row["status"] == "succeeded", row
    assert row["attempt"] == 1
    assert [s["id"] for s in row["step_statuses"]] == ["first", "slow", "last"]
    # Resumed after its finished step: the first ran once, the one in flight twice.
    assert target.hits("/status/200") == 1
    assert target.hits("/slow") == 2
    assert target.hits("/raw") == 1


def test_sigterm_lets_a_run_finish_within_the_grace(cluster: Cluster, target: HttpTarget) -> None:
    repo = cluster.write_jobs({"three-steps": three_steps(target, slow_seconds=2)})
    cluster.vecron("sync", "--repo", str(repo))
    worker = cluster.start("worker", "--grace", "20s")
    cluster.vecron("trigger", "three-steps")
    assert wait_for(lambda: target.hits("/slow") == 1, seconds=30)
    assert cluster.stop(worker) == 0
    (row,) = cluster.executions()
    assert row["status"] == "succeeded"
    assert "vecron: stopped" in cluster.log_of(worker)


def test_a_worker_past_its_grace_hands_the_run_back(cluster: Cluster, target: HttpTarget) -> None:
    repo = cluster.write_jobs({"three-steps": three_steps(target, slow_seconds=4)})
    cluster.vecron("sync", "--repo", str(repo))
    worker = cluster.start("worker", "--grace", "1s")
    cluster.vecron("trigger", "three-steps")
    assert wait_for(lambda: target.hits("/slow") == 1, seconds=30)
    assert cluster.stop(worker) == 0
    (row,) = cluster.executions()
    assert row["status"] == "queued", row  # handed back, not lost and not "interrupted"
    cluster.start("worker")
    assert wait_for(lambda: len(final(cluster)) == 1, seconds=30)
    (row,) = cluster.executions()
    assert row["status"] == "succeeded"
    assert target.hits("/status/200") == 1  # resumed after the finished step
    assert target.hits("/slow") == 2


def test_a_run_that_kills_its_workers_ends_in_the_dead_letter(
    cluster: Cluster, target: HttpTarget, nats_url: str, tmp_path: Path
) -> None:
    # Deliver at most twice; each worker is killed in the slow step.
    queue_url = stream_url(nats_url, ack_wait=2, max_deliver=2)
    cluster.env["VECRON_QUEUE_URL"] = queue_url
    try:
        repo = cluster.write_jobs({"three-steps": three_steps(target, slow_seconds=30)})
        cluster.vecron("sync", "--repo", str(repo))
        execution_id = cluster.vecron("trigger", "three-steps").stdout.split()[0]
        for attempt in (1, 2):
            worker = cluster.start("worker", "--lease", "2s")
            assert wait_for(lambda n=attempt: target.hits("/slow") == n, seconds=30)  # type: ignore[misc]
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        survivor = cluster.start("worker", "--lease", "2s")
        assert wait_for(lambda: len(final(cluster)) == 1, seconds=30), cluster.log_of(survivor)
        (row,) = cluster.executions()
        assert row["status"] == "dead_lettered"
        assert "delivered 2 times" in str(row["error"])
        assert target.hits("/slow") == 2  # not delivered a third time
        # The operator fixes the target (here: a short step) and retries it.
        cluster.write_jobs({"three-steps": three_steps(target, slow_seconds=0)})
        cluster.vecron("sync", "--repo", str(repo))
        retried = cluster.vecron("retry", execution_id)
        new_id = retried.stdout.split()[0]
        assert f"a retry of {execution_id}" in retried.stdout
        assert wait_for(lambda: len(final(cluster)) == 2, seconds=30)
        rows = {row["execution_id"]: row for row in cluster.executions()}
        assert rows[new_id]["status"] == "succeeded"
        assert rows[execution_id]["status"] == "dead_lettered"
    finally:
        cluster.stop_all()
        delete_streams(queue_url)
