"""A distributed vecron for the failure tests: real role processes over PostgreSQL, S3,
NATS JetStream and Redis.

:class:`Cluster` holds the environment every role reads (``VECRON_*``), starts roles
as subprocesses (``vecron scheduler``, ``worker``, ``serve``) with their output in
log files under the test's folder, runs one-shot commands (``vecron sync``,
``trigger``), and reads the executions straight from PostgreSQL, so that a test
counts what really happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

ROLE_GRACE_SECONDS = 20.0


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: dict[int, Path] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.env["VECRON_DATABASE_URL"]

    def write_jobs(self, jobs: Mapping[str, str]) -> Path:
        """Write job files (name → YAML) into the cluster's job repository."""
        repo = self.root / "repo"
        (repo / "jobs").mkdir(parents=True, exist_ok=True)
        for name, text in jobs.items():
            (repo / "jobs" / f"{name}.yaml").write_text(text)
        return repo

    def vecron(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "vecron", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"vecron {' '.join(args)}: {result.returncode}\n{result.stderr}")
        return result

    def start(self, role: str, *args: str, env: Mapping[str, str] | None = None) -> Any:
        """Start ``vecron ROLE ARGS…``; its output goes to ``ROLE-N.log``."""
        log = self.root / f"{role}-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "vecron", role, *args, "--log-level", "info"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
                cwd=self.root,
            )
        self.processes.append(process)
        self._logs[process.pid] = log
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return self._logs[process.pid].read_text(errors="replace")

    def stop(self, process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> int:
        """Signal a role and wait for it; its exit code."""
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=ROLE_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"{process.args} did not stop on signal {signum}:\n{self.log_of(process)}"
                ) from None
        return process.returncode

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as connection:
            return list(connection.execute(query, params or {}).fetchall())

    def executions(self) -> list[dict[str, Any]]:
        return self.sql(
            "SELECT execution_id::text AS execution_id, job_name, status, scheduled_at, "
            "attempt, error, step_statuses, trigger_source FROM job_executions "
            "ORDER BY queued_at"
        )


def wait_for(predicate: Callable[[], bool], *, seconds: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def cluster_env(
    root: Path,
    *,
    database_url: str,
    object_store_url: str,
    queue_url: str,
    redis_url: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
    env.update(
        {
            "VECRON_HOME": str(root / "home"),
            "VECRON_SECRET_KEY": "distributed-tests",
            "VECRON_DATABASE_URL": database_url,
            "VECRON_OBJECT_STORE_URL": object_store_url,
            "VECRON_QUEUE_URL": queue_url,
            "VECRON_REDIS_URL": redis_url,
            **(extra or {}),
        }
    )
    return env


def running(cluster: Cluster) -> Iterator[Cluster]:
    try:
        yield cluster
    finally:
        cluster.stop_all()
