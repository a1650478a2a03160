"""Schedulers on PostgreSQL + NATS + Redis: every fire exactly once while schedulers
come and go."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest

from tests.distributed.cluster import Cluster, wait_for

JOBS = 50
#: How long the two schedulers run (the issue asks for two minutes; a laptop may pass less).
SOAK_SECONDS = float(os.environ.get("VECRON_TEST_SOAK_SECONDS", "120"))


def every_second(name: str) -> str:
    return f"""
name: {name}
schedule:
  type: cron
  expression: "* * * * * ?"
allow_concurrent: true
steps:
  - id: noop
    type: http
    config: {{url: "http://127.0.0.1:9/never-run"}}
"""


def up(cluster: Cluster, scheduler: subprocess.Popen[bytes]) -> bool:
    return "  queue " in cluster.log_of(scheduler)


def gaps(fires: list[datetime]) -> list[datetime]:
    """The seconds missing between the first and the last fire."""
    have = set(fires)
    missing = []
    moment = min(fires)
    while moment < max(fires):
        moment += timedelta(seconds=1)
        if moment not in have:
            missing.append(moment)
    return missing


@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_two_schedulers_fire_every_fire_exactly_once(cluster: Cluster) -> None:
    repo = cluster.write_jobs({f"tick-{n:02d}": every_second(f"tick-{n:02d}") for n in range(JOBS)})
    first = cluster.start("scheduler")
    second = cluster.start("scheduler")
    # Both up before the jobs arrive: a first fire later than the misfire threshold
    # would be a misfire (one catch-up run), not what this test counts.
    assert wait_for(lambda: all(up(cluster, s) for s in (first, second)), seconds=60)
    cluster.vecron("sync", "--repo", str(repo))
    started = time.monotonic()
    # One scheduler dies without a word a third of the way in and comes back later.
    time.sleep(SOAK_SECONDS / 3)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(SOAK_SECONDS / 6)
    third = cluster.start("scheduler")
    assert wait_for(lambda: up(cluster, third), seconds=60)
    time.sleep(max(0.0, SOAK_SECONDS - (time.monotonic() - started)))
    for scheduler in (second, third):
        assert cluster.stop(scheduler) == 0, cluster.log_of(scheduler)

    fires: dict[str, list[datetime]] = defaultdict(list)
    for row in cluster.sql(
        "SELECT job_name, scheduled_at FROM job_executions WHERE trigger_source = 'scheduled'"
    ):
        fires[row["job_name"]].append(row["scheduled_at"])
    assert len(fires) == JOBS
    for job, times in fires.items():
        repeated = {t: n for t, n in Counter(times).items() if n > 1}
        assert not repeated, f"{job} fired twice at {sorted(repeated)[:3]}"
        assert not gaps(times), f"{job} missed {gaps(times)[:3]}"
        # Close to one fire a second for the whole run.
        assert len(times) >= SOAK_SECONDS - 10, (job, len(times))
