"""SFTP throughput: vecron's sftp step against OpenSSH's own ``sftp`` client.

Both talk to the same throwaway OpenSSH sshd on loopback (tests/services/sshd.py; needs
root and ``openssh-server``), log in with the same ed25519 key, and each uses its own
defaults (OpenSSH: chacha20-poly1305, 32 KiB requests, 64 in flight; vecron: AES-GCM,
requests as large as the server allows, paramiko's prefetch and pipelined writes).

Measured, best of ``--repeat`` runs, each including connecting and logging in:

- MB/s for one ``--size-mb`` file (500 MB by default), download and upload. vecron's
  figure is the whole step: the file ends in the object store (a local folder here,
  written through a temporary file and fsynced), or is read from it. The "transfer
  only" line is the same session code writing a plain local file, as ``sftp`` does.
- ms per file for ``--files`` small files (200 of 4 KiB): one ``get dir/*`` / ``put``
  of all of them in one session, against one vecron step with a wildcard (download)
  or a list of sources (upload).

Goal (issue 7): >= 0.5x OpenSSH's MB/s and <= 2x its ms per file. Figures only, no
timed asserts.

    .venv/bin/python benchmarks/sftp_bench.py [--size-mb 500] [--files 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pydantic import TypeAdapter  # noqa: E402

from tests.runtime.steprun import make_step_run  # noqa: E402
from tests.services.sshd import SshServer, openssh_server, sshd_unavailable  # noqa: E402
from vecron.runtime.steps.sftp import SftpStepExecutor  # noqa: E402
from vecron.runtime.steps.sftp_keys import Credentials  # noqa: E402
from vecron.runtime.steps.sftp_session import Abort, Endpoint, open_connection  # noqa: E402
from vecron.runtime.steps.sftp_transfer import RemoteFile, download_file  # noqa: E402
from vecron.spec.models import SftpConfig  # noqa: E402

MiB = 1024 * 1024
MB = 1_000_000
GOAL_SPEED_RATIO = 0.5
GOAL_PER_FILE_RATIO = 2.0
CONFIG = TypeAdapter[Any](SftpConfig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-kb", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    problem = sshd_unavailable()
    if problem is not None:
        sys.exit(f"cannot run: {problem}")
    if shutil.which("sftp") is None:
        sys.exit("cannot run: OpenSSH's sftp client is missing (apt-get install openssh-client)")
    logging.basicConfig(level=logging.WARNING)
    with openssh_server() as server, tempfile.TemporaryDirectory() as scratch:
        asyncio.run(_bench(server, Path(scratch), args))


async def _bench(server: SshServer, scratch: Path, args: argparse.Namespace) -> None:
    size = args.size_mb * MB
    remote = _folder(server, server.root / "bench")
    big = remote / "big.bin"
    print(f"writing a {args.size_mb} MB random file and {args.files} small files ...")
    _random_file(big, size)
    server.give(big)
    small = _folder(server, remote / "small")
    local_small = scratch / "small"
    local_small.mkdir()
    for index in range(args.files):
        name = f"file-{index:04d}.csv"
        data = os.urandom(args.file_kb * 1024)
        (small / name).write_bytes(data)
        server.give(small / name)
        (local_small / name).write_bytes(data)
    known_hosts = scratch / "known_hosts"
    known_hosts.write_text(server.known_hosts_line("ed25519") + "\n")
    ssh = _OpenSsh(server, known_hosts, scratch / "batch")
    executor = SftpStepExecutor(work_dir=scratch)
    key = server.user_keys["ed25519"]
    base = {
        "host": server.host,
        "port": server.port,
        "auth": {"type": "ssh_key", "username": server.user, "private_key_path": str(key)},
        "host_key": server.public_host_key("ed25519"),
    }

    def run_for(name: str) -> Any:
        return make_step_run(scratch / f"store-{name}", job_name="bench", step_id="sftp")

    # --- one large file ------------------------------------------------------------
    local_big = scratch / "openssh-big.bin"
    openssh_down = await _best(
        args.repeat, lambda: ssh.run(f"get {big} {local_big}"), after=local_big.unlink
    )
    uploaded = remote / "up-openssh.bin"
    openssh_up = await _best(args.repeat, lambda: ssh.run(f"put {local_big} {uploaded}"))

    down_run = run_for("down")
    download = CONFIG.validate_python({**base, "operation": "download", "remote_path": str(big)})

    async def vecron_download() -> None:
        await executor.run(download, down_run)

    vecron_down = await _best(args.repeat, vecron_download)
    stored = "jobs/job-1/executions/exec-1/output/big.bin"
    upload = CONFIG.validate_python(
        {
            **base,
            "operation": "upload",
            "remote_path": str(remote / "up-vecron.bin"),
            "source_path": stored,
        }
    )

    async def vecron_upload() -> None:
        await executor.run(upload, down_run)

    vecron_up = await _best(args.repeat, vecron_upload)
    transfer_only = await _best(args.repeat, lambda: _raw_download(server, big, scratch, size))

    # --- many small files ----------------------------------------------------------
    local_many = scratch / "openssh-small"
    local_many.mkdir()
    openssh_many_down = await _best(args.repeat, lambda: ssh.run(f"get {small}/* {local_many}/"))
    up_dir = _folder(server, remote / "up-small-openssh")
    openssh_many_up = await _best(args.repeat, lambda: ssh.run(f"put {local_small}/* {up_dir}/"))

    many_run = run_for("many")
    many_down = CONFIG.validate_python(
        {**base, "operation": "download", "remote_path": f"{small}/*.csv"}
    )
    outputs: list[dict[str, Any]] = []

    async def vecron_many_download() -> None:
        outputs.append(await executor.run(many_down, many_run))

    vecron_many_down = await _best(args.repeat, vecron_many_download)
    pulled = {"pull": {"status": "succeeded", "output": outputs[-1]}}
    upload_run = make_step_run(
        scratch / "store-many", job_name="bench", step_id="push", steps=pulled
    )
    many_up = CONFIG.validate_python(
        {
            **base,
            "operation": "upload",
            "remote_path": f"{remote}/up-small-vecron/",
            "create_directories": True,
            "source_path": "{{steps.pull.output.files}}",
        }
    )

    async def vecron_many_upload() -> None:
        await executor.run(many_up, upload_run)

    vecron_many_up = await _best(args.repeat, vecron_many_upload)
    await executor.close()

    # --- report --------------------------------------------------------------------
    mb = size / MB
    print(f"\n{args.size_mb} MB file, MB/s (best of {args.repeat}; higher is better)")
    print(f"{'':24}{'OpenSSH sftp':>14}{'vecron':>10}{'ratio':>8}   goal >= {GOAL_SPEED_RATIO}x")
    for label, theirs, ours in (
        ("download", openssh_down, vecron_down),
        ("upload", openssh_up, vecron_up),
        ("download, transfer only", openssh_down, transfer_only),
    ):
        ratio = theirs / ours
        print(f"{label:24}{mb / theirs:14.1f}{mb / ours:10.1f}{ratio:7.2f}x")
    print(f"\n{args.files} files of {args.file_kb} KiB, ms per file (lower is better)")
    print(f"{'':24}{'OpenSSH sftp':>14}{'vecron':>10}{'ratio':>8}   goal <= {GOAL_PER_FILE_RATIO}x")
    for label, theirs, ours in (
        ("download", openssh_many_down, vecron_many_down),
        ("upload", openssh_many_up, vecron_many_up),
    ):
        per_theirs, per_ours = theirs * 1000 / args.files, ours * 1000 / args.files
        print(f"{label:24}{per_theirs:14.2f}{per_ours:10.2f}{per_ours / per_theirs:7.2f}x")


async def _best(
    repeat: int,
    action: Callable[[], Awaitable[None]],
    *,
    after: Callable[[], None] | None = None,
) -> float:
    """The fastest of ``repeat`` runs of ``action``, in seconds."""
    times = []
    for attempt in range(repeat):
        started = time.perf_counter()
        await action()
        times.append(time.perf_counter() - started)
        if after is not None and attempt < repeat - 1:
            after()
    return min(times)


async def _raw_download(server: SshServer, big: Path, scratch: Path, size: int) -> None:
    """The session code alone: connect, log in, stream into a plain local file."""

    def work() -> None:
        endpoint = Endpoint(
            host=server.host, port=server.port, username=server.user, timeout_seconds=30
        )
        abort = Abort()
        conn = open_connection(
            endpoint,
            Credentials(private_key_path=str(server.user_keys["ed25519"])),
            host_key=server.public_host_key("ed25519"),
            known_hosts_path=None,
            verify_host_key=True,
            abort=abort,
        )
        target = scratch / "raw.bin"
        target.unlink(missing_ok=True)
        try:
            file = RemoteFile(path=str(big), relative="big.bin", size=size)
            download_file(conn, endpoint, file, target, abort)
        finally:
            conn.close()

    await asyncio.to_thread(work)


class _OpenSsh:
    """OpenSSH's ``sftp`` in batch mode against the test server."""

    def __init__(self, server: SshServer, known_hosts: Path, batch: Path) -> None:
        self._batch = batch
        self._command = [
            "sftp",
            "-q",
            "-b",
            str(batch),
            "-P",
            str(server.port),
            "-i",
            str(server.user_keys["ed25519"]),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{server.user}@{server.host}",
        ]

    async def run(self, command: str) -> None:
        self._batch.write_text(command + "\n")
        result = await asyncio.to_thread(
            subprocess.run, self._command, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"sftp failed ({result.returncode}): {result.stderr}")


def _folder(server: SshServer, path: Path) -> Path:
    path.mkdir()
    return server.give(path)


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            out.write(block)
            left -= len(block)


if __name__ == "__main__":
    main()
