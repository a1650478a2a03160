"""`vecron plan`, `sync`, `jobs` and `reconcile` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.reconciler.gitrepo import GitRepo

JOB = """\
name: {name}
schedule: {{type: cron, expression: "0 0 2 ? * MON-FRI"}}
steps:
  - id: fetch
    type: http
    config: {{url: "https://example.invalid/{name}"}}
"""


def vecron(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VECRON_HOME": str(home)}
    for name in ("VECRON_DATABASE_URL", "VECRON_OBJECT_STORE_URL", "VECRON_REPO"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_plan_sync_jobs_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = GitRepo(tmp_path / "repo")
    repo.write("jobs/a.yaml", JOB.format(name="a"))
    repo.write("jobs/b.yaml", JOB.format(name="b"))
    repo.commit("two jobs")
    args = ("--repo", str(repo.path), "--ref", "main")

    plan = vecron(home, "plan", *args)
    assert plan.returncode == 2, plan.stderr  # changes pending
    assert "+ a" in plan.stdout
    assert "Plan: 2 to create, 0 to update, 0 to delete" in plan.stdout

    sync = vecron(home, "sync", *args)
    assert sync.returncode == 0, sync.stderr
    assert "Sync: ok." in sync.stdout

    again = vecron(home, "plan", *args)
    assert again.returncode == 0
    assert "no changes" in again.stdout

    listed = vecron(home, "jobs", "--format", "json")
    document = json.loads(listed.stdout)
    assert [job["name"] for job in document["jobs"]] == ["a", "b"]
    assert document["jobs"][0]["source_commit"] == repo.head()
    assert document["last_sync"]["status"] == "ok"
    table = vecron(home, "jobs")
    assert "0 0 2 ? * MON-FRI" in table.stdout
    assert "last sync: ok" in table.stdout

    repo.write("jobs/a.yaml", "name: a\nsteps: [\n")
    repo.commit("break a")
    broken = vecron(home, "plan", *args, "--format", "json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["invalid"][0]["path"] == "jobs/a.yaml"
    degraded = vecron(home, "sync", *args)
    assert degraded.returncode == 1
    assert "jobs/a.yaml:3:1: error: invalid YAML" in degraded.stdout


def test_refusals_and_bad_sources_exit_nonzero_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = GitRepo(tmp_path / "repo")
    repo.write("jobs/a.yaml", JOB.format(name="a"))
    repo.commit("one job")
    assert vecron(home, "sync", "--repo", str(repo.path)).returncode == 0

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = vecron(home, "sync", "--repo", str(empty))
    assert refused.returncode == 1
    assert "would remove all 1 jobs" in refused.stderr
    assert vecron(home, "plan", "--repo", str(empty)).returncode == 1

    missing_ref = vecron(home, "plan", "--repo", str(repo.path), "--ref", "nope")
    assert missing_ref.returncode == 1
    assert missing_ref.stderr.strip().count("\n") == 0
    assert "ref 'nope' does not exist" in missing_ref.stderr

    jobs = json.loads(vecron(home, "jobs", "--format", "json").stdout)["jobs"]
    assert [job["name"] for job in jobs] == ["a"]


def test_reconcile_follows_a_watched_folder_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "jobs-repo"
    (folder / "jobs").mkdir(parents=True)
    (folder / "jobs" / "a.yaml").write_text(JOB.format(name="a"))
    env = {**os.environ, "VECRON_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "vecron", "reconcile", "--repo", str(folder), "--interval", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _wait_for_jobs(home, ["a"])
        (folder / "jobs" / "b.yaml").write_text(JOB.format(name="b"))
        # The interval is a minute: only the watcher can make this happen in time.
        assert _wait_for_jobs(home, ["a", "b"])
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "reconciling" in out


def _wait_for_jobs(home: Path, names: list[str], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = vecron(home, "jobs", "--format", "json")
        listed = json.loads(result.stdout)["jobs"] if result.returncode == 0 else []
        if [job["name"] for job in listed] == names:
            return True
        time.sleep(0.5)
    return False


def test_a_store_that_is_down_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    (folder / "jobs").mkdir(parents=True)
    (folder / "jobs" / "a.yaml").write_text(JOB.format(name="a"))
    for setting, url, shown in (
        ("VECRON_DATABASE_URL", "postgresql://vecron:pw-123@127.0.0.1:1/x", "127.0.0.1:1"),
        ("VECRON_OBJECT_STORE_URL", "s3://key:pw-123@127.0.0.1:1/b?secure=false", "127.0.0.1:1"),
    ):
        env = {**os.environ, "VECRON_HOME": str(tmp_path / "home"), setting: url}
        for command in ("plan", "sync"):
            result = subprocess.run(
                [sys.executable, "-m", "vecron", command, "--repo", str(folder)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            assert result.returncode == 1, (command, setting, result.stderr)
            assert result.stderr.count("\n") == 1, result.stderr
            assert shown in result.stderr
            assert "pw-123" not in result.stderr + result.stdout
    plan = vecron(tmp_path / "home", "jobs", "--format", "json")
    assert json.loads(plan.stdout)["jobs"] == []  # nothing was half-written
