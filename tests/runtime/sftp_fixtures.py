"""Fixtures and helpers for the sftp step tests (tests/runtime/test_sftp_*.py).

``sshd`` is one OpenSSH server (tests/services/sshd.py) for the whole test run, started
on first use and stopped when pytest ends; ``remote`` a fresh folder on it per test,
owned by the test user. ``executor`` is an :class:`SftpStepExecutor` whose staging
folder the test can watch. Test modules import the fixtures by name (``__all__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from tests.runtime.steprun import make_step_run
from tests.services.sshd import SshServer, openssh_server, sshd_unavailable
from tests.support import require
from vecron.backends.objectstore import ObjectStore
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.sftp import SftpStepExecutor
from vecron.spec.models import SftpConfig

__all__ = ["executor", "remote", "sshd"]

CONFIG = TypeAdapter[Any](SftpConfig)
PASSWORD_SECRET = "SFTP_PASSWORD"
MiB = 1024 * 1024
_STARTED: dict[str, SshServer] = {}


@pytest.fixture
def sshd(request: pytest.FixtureRequest) -> SshServer:
    """The test run's sshd (started once; a module-level cache rather than a session
    fixture, so that every test module importing this one shares it)."""
    problem = sshd_unavailable()
    require(problem is None, problem or "")
    server = _STARTED.get("server")
    if server is None:
        stack = contextlib.ExitStack()
        server = stack.enter_context(openssh_server())
        request.config.add_cleanup(stack.close)
        request.config.add_cleanup(_STARTED.clear)
        _STARTED["server"] = server
    return server


@pytest.fixture
def remote(sshd: SshServer) -> Iterator[Path]:
    """A folder on the server for this test, owned by the test user."""
    folder = sshd.root / f"t-{secrets.token_hex(4)}"
    folder.mkdir()
    sshd.give(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[SftpStepExecutor]:
    work = tmp_path / "sftp-work"
    work.mkdir()
    executor = SftpStepExecutor(work_dir=work)
    yield executor
    await executor.close()


def put_remote(sshd: SshServer, path: Path, data: bytes = b"", *, mode: int | None = None) -> Path:
    """Write ``path`` on the server (creating folders), owned by the test user."""
    missing = [parent for parent in reversed(path.parents) if not parent.exists()]
    for folder in missing:
        folder.mkdir()
        sshd.give(folder)
    path.write_bytes(data)
    sshd.give(path)
    if mode is not None:
        path.chmod(mode)
    return path


def random_file(path: Path, size: int, sshd: SshServer | None = None) -> str:
    """Fill ``path`` with ``size`` random bytes (1 MiB blocks); return its SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    if sshd is not None:
        sshd.give(path)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def step_run(
    tmp_path: Path,
    sshd: SshServer,
    *,
    objects: ObjectStore | None = None,
    steps: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> StepRun:
    """A StepRun with the server's password as the secret ``SFTP_PASSWORD``."""
    run = make_step_run(
        tmp_path,
        job_name="sftp-test",
        step_id="transfer",
        steps=steps,
        secrets={PASSWORD_SECRET: sshd.password, **(secrets or {})},
    )
    return run if objects is None else dataclasses.replace(run, objects=objects)


def _base(sshd: SshServer, config: dict[str, Any]) -> dict[str, Any]:
    password = {"type": "password", "username": sshd.user, "password": "${secret:SFTP_PASSWORD}"}
    return {
        "host": sshd.host,
        "port": sshd.port,
        "auth": password,
        "host_key": sshd.public_host_key("ed25519"),
        "timeout_seconds": 10,
        **config,
    }


def download(sshd: SshServer, remote_path: str | Path, **config: Any) -> SftpConfig:
    """A download config for the test server (password auth, pinned ed25519 key)."""
    doc = _base(sshd, {"operation": "download", "remote_path": str(remote_path), **config})
    result: SftpConfig = CONFIG.validate_python(doc)
    return result


def upload(sshd: SshServer, remote_path: str | Path, source_path: Any, **config: Any) -> SftpConfig:
    """An upload config for the test server (password auth, pinned ed25519 key)."""
    doc = _base(
        sshd,
        {
            "operation": "upload",
            "remote_path": str(remote_path),
            "source_path": source_path,
            **config,
        },
    )
    result: SftpConfig = CONFIG.validate_python(doc)
    return result


def keygen(path: Path, kind: str = "ed25519", *, bits: int | None = None) -> Path:
    """A throwaway key pair at ``path`` (``path.pub`` holds the public half)."""
    size = ["-b", str(bits)] if bits else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *size, "-N", "", "-C", "other", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


async def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Poll ``condition`` every 2 ms until it holds (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)


def staged_bytes(work: Path) -> int:
    """Bytes in the executor's staging files right now."""
    total = 0
    for file in work.rglob("*"):
        with contextlib.suppress(OSError):
            total += file.stat().st_size
    return total


class PeakRss:
    """The peak resident memory growth (bytes) of this process inside a ``with``.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``) and reads ``VmHWM``
    afterwards; where the reset is not allowed, samples ``VmRSS`` every millisecond.
    """

    def __init__(self) -> None:
        self.growth = 0
        self._start = 0
        self._peak = 0
        self._sampling: threading.Thread | None = None
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        gc.collect()
        self._start = _status("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self._sampling = threading.Thread(target=self._sample, daemon=True)
            self._sampling.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sampling is not None:
            self._stop.set()
            self._sampling.join()
            peak = self._peak
        else:
            peak = _status("VmHWM")
        self.growth = max(0, peak - self._start)

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, _status("VmRSS"))


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None, field
    return int(match.group(1)) * 1024
