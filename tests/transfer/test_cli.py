"""`vecron export` and `vecron import` as a user runs them: real processes, an embedded
home, and no secret value in any output."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.http_target import HttpTarget
from tests.transfer.planted import CUSTOM_PATTERN, JOB_NAME, PlantedJob, planted_job
from vecron.settings import Settings
from vecron.stores import open_stores

NIGHTLY = {
    "name": "nightly",
    "steps": [
        {
            "id": "call",
            "type": "http",
            "config": {"url": "https://x.example/", "auth": {"type": "bearer", "token": "t0k-1"}},
        }
    ],
}


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
    return {**env, "VECRON_HOME": str(home), **extra}


def vecron(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        input="",
        capture_output=True,
        text=True,
        env=environment(home, **env),
        timeout=120,
        check=False,
    )


async def job_names(home: Path) -> list[str]:
    async with open_stores(Settings(home=home)) as stores:
        return [job.name for job in await stores.database.list_jobs()]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def planted(home: Path, tmp_path: Path, target: HttpTarget) -> PlantedJob:
    job = planted_job(target)
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    (repo / "jobs/partner.json").write_text(job.text, encoding="utf-8")
    (repo / "jobs/nightly.json").write_text(json.dumps(NIGHTLY), encoding="utf-8")
    result = vecron(home, "sync", "--repo", str(repo))
    assert result.returncode == 0, result.stdout + result.stderr
    return job


def _no_secret(text: str, planted: PlantedJob) -> None:
    for kind, value in planted.secrets.items():
        assert value not in text, kind
    assert "t0k-1" not in text


async def test_export_then_import_from_the_command_line(
    home: Path, tmp_path: Path, planted: PlantedJob
) -> None:
    out = tmp_path / "out"
    result = vecron(
        home,
        "export",
        "--all",
        "--out",
        str(out),
        "--format",
        "yaml",
        VECRON_REDACT_PATTERN=CUSTOM_PATTERN,  # the setting does what --redact-pattern does
    )
    assert result.returncode == 0, result.stderr
    _no_secret(result.stdout + result.stderr, planted)
    for exported in out.iterdir():
        _no_secret(exported.read_text(encoding="utf-8"), planted)
    assert "exported nightly: 1 secret(s) redacted; needs NIGHTLY_CALL_AUTH_TOKEN" in result.stdout
    files = sorted(out.iterdir())
    assert [f.name.startswith(("job-nightly-", "job-partner-sync-")) for f in files] == [True] * 2
    nightly = next(f for f in files if f.name.startswith("job-nightly-"))
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("# restored\nNIGHTLY_CALL_AUTH_TOKEN=t0k-1\n", encoding="utf-8")
    result = vecron(home, "import", str(nightly), "--secrets-file", str(secrets_file))
    assert result.returncode == 0, result.stderr
    _no_secret(result.stdout + result.stderr, planted)
    assert "created nightly-copy-1 (renamed from nightly)" in result.stdout
    assert result.stdout.rstrip().endswith("imported 1 of 1 job(s); created: nightly-copy-1")
    assert sorted(await job_names(home)) == ["nightly", "nightly-copy-1", JOB_NAME]


async def test_without_a_terminal_a_missing_secret_is_an_error_and_nothing_is_created(
    home: Path, tmp_path: Path, planted: PlantedJob
) -> None:
    bundle = tmp_path / "all.zip"
    result = vecron(
        home, "export", "--all", "--zip", "--out", str(bundle), "--redact-pattern", CUSTOM_PATTERN
    )
    assert result.returncode == 0, result.stderr
    _no_secret(bundle.read_bytes().decode("latin-1"), planted)
    result = vecron(home, "import", str(bundle), "--secret", "NIGHTLY_CALL_AUTH_TOKEN=t0k-1")
    assert result.returncode == 1
    assert "nothing imported: these secrets have no value" in result.stderr
    assert "PARTNER_SYNC_WEBHOOK_SECRET (needed by " in result.stderr
    assert "NIGHTLY_CALL_AUTH_TOKEN" not in result.stderr.split("no value")[1]  # given
    _no_secret(result.stdout + result.stderr, planted)
    assert sorted(await job_names(home)) == ["nightly", JOB_NAME]


def test_a_malformed_secret_argument_is_not_echoed(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "nightly.json"
    source.write_text(json.dumps(NIGHTLY), encoding="utf-8")
    result = vecron(home, "import", str(source), "--secret", "s3cr3t-without-a-name")
    assert result.returncode == 2
    assert "--secret #1: expected NAME=VALUE" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


def test_usage_errors(home: Path, tmp_path: Path) -> None:
    assert vecron(home, "export", "--out", str(tmp_path)).returncode == 2
    assert vecron(home, "export", "a", "--all", "--out", str(tmp_path)).returncode == 2
    both = vecron(home, "export", "--all", "--out", str(tmp_path), "--git", str(tmp_path))
    assert both.returncode == 2
    bad = vecron(home, "export", "--all", "--out", str(tmp_path), "--redact-pattern", "(")
    assert bad.returncode == 2
    assert "invalid redaction pattern" in bad.stderr


async def test_on_a_terminal_import_asks_for_each_missing_secret(
    home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "nightly.json"
    redacted = json.loads(json.dumps(NIGHTLY))
    redacted["steps"][0]["config"]["auth"]["token"] = "${secret:TYPED_TOKEN}"
    source.write_text(json.dumps(redacted), encoding="utf-8")
    value = "typed-" + os.urandom(6).hex()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "vecron", "import", str(source)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=environment(home),
        start_new_session=True,  # no controlling terminal: getpass uses this one
    )
    os.close(terminal)
    try:
        seen = _read_until(controller, b"value of secret TYPED_TOKEN (for ")
        os.write(controller, value.encode() + b"\n")
        seen += _read_until(controller, b"imported 1 of 1 job(s)")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert value.encode() not in seen  # no echo
    async with open_stores(Settings(home=home)) as stores:
        stored = await stores.database.get_variables(decrypt=True)
    assert stored["TYPED_TOKEN"].value == value
    assert stored["TYPED_TOKEN"].secret


def _read_until(fd: int, marker: bytes, seconds: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, seen
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the other end closed
                break
            seen += chunk
    return seen
