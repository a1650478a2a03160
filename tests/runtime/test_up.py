"""`vecron up jobs-example` as a user runs it, with `vecron trigger` from another process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.runtime.http_target import free_port

REPO = Path(__file__).resolve().parents[2]


def vecron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def runs(env: dict[str, str]) -> list[dict[str, Any]]:
    result = vecron(env, "runs", "--format", "json", "--limit", "200")
    return json.loads(result.stdout) if result.returncode == 0 else []


def wait_for(predicate: Any, seconds: float = 40) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_up_runs_the_example_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    repo = tmp_path / "jobs-example"
    shutil.copytree(REPO / "jobs-example", repo)
    variables = repo / "variables.yaml"
    variables.write_text(
        variables.read_text().replace("http://127.0.0.1:8080", f"http://127.0.0.1:{port}")
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VECRON_") or key == "VECRON_SECRET_KEY"
    }
    env["VECRON_HOME"] = str(tmp_path / "home")
    process = subprocess.Popen(
        [sys.executable, "-m", "vecron", "up", str(repo), "--port", str(port), "--grace", "5s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert wait_for(lambda: _healthy(port)), "the API never answered"
        # The health check fires every 30 s on the wall clock, prepare-report-db at once.
        assert wait_for(
            lambda: (
                {"health-check", "prepare-report-db"}
                <= {r["job_name"] for r in runs(env) if r["status"] == "succeeded"}
            ),
            seconds=45,
        ), runs(env)
        # Another process triggers; the running worker picks it up through the database.
        triggered = vecron(env, "trigger", "prepare-report-db")
        assert triggered.returncode == 0, triggered.stderr
        execution_id = triggered.stdout.split()[0]
        assert wait_for(
            lambda: any(
                r["execution_id"] == execution_id and r["status"] == "succeeded" for r in runs(env)
            )
        )
        shown = vecron(env, "show", execution_id)
        assert "import-log" in shown.stdout
        assert "succeeded" in shown.stdout
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'job_success_total{job="prepare-report-db"}' in metrics
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert ready["ready"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out
    assert "vecron: stopped" in out
    assert (tmp_path / ".vecron" / "example-reports.db").exists()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
