"""The sftp step's uploads against a real OpenSSH sshd (tests/services/sshd.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.sftp_fixtures import (
    MiB,
    PeakRss,
    executor,
    put_remote,
    random_file,
    remote,
    sha256_file,
    sshd,
    step_run,
    upload,
    wait_for,
)
from tests.services.sshd import SshServer
from vecron.errors import StepFailed
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.sftp import SftpStepExecutor
from vecron.runtime.steps.sftp_transfer import TEMP_SUFFIX
from vecron.spec.models import Job, SftpStep
from vecron.stores import Stores

__all__ = ["executor", "remote", "sshd"]

SOURCE = "jobs/job-1/executions/exec-1/output/report.csv"
EXAMPLE = Path(__file__).resolve().parents[2] / "jobs-example" / "jobs" / "partner-sftp-upload.json"


def temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(TEMP_SUFFIX)]


async def with_object(run: StepRun, path: str, data: bytes) -> str:
    await run.objects.put(path, data)
    return path


async def test_upload_into_a_directory_from_each_store(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path, stores: Stores
) -> None:
    run = step_run(tmp_path, sshd, objects=stores.objects)
    await with_object(run, SOURCE, b"id,amount\n1,10\n")

    output = await executor.run(upload(sshd, f"{remote}/", SOURCE), run)

    assert output == {
        "files": [
            {
                "path": SOURCE,
                "filename": "report.csv",
                "size": 15,
                "remote_path": f"{remote}/report.csv",
            }
        ],
        "file_count": 1,
        "remote_path": f"{remote}/",
    }
    assert (remote / "report.csv").read_bytes() == b"id,amount\n1,10\n"
    assert temp_files(remote) == []


async def test_upload_to_a_file_name_and_into_an_existing_directory(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    run = step_run(tmp_path, sshd)
    await with_object(run, SOURCE, b"data")
    await executor.run(upload(sshd, remote / "renamed.csv", SOURCE), run)
    assert (remote / "renamed.csv").read_bytes() == b"data"
    (remote / "inbox").mkdir()
    sshd.give(remote / "inbox")
    output = await executor.run(upload(sshd, remote / "inbox", SOURCE), run)  # no "/"
    assert output["files"][0]["remote_path"] == f"{remote}/inbox/report.csv"


async def test_source_from_a_reference_to_an_earlier_download(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    files: list[dict[str, Any]] = [
        {"path": f"jobs/job-1/executions/exec-1/output/{name}", "filename": name, "size": 1}
        for name in ("a.csv", "b.csv")
    ]
    earlier = {"status": "succeeded", "output": {"files": files, "file_count": 2}}
    run = step_run(tmp_path, sshd, steps={"pull": earlier})
    for file in files:
        await with_object(run, file["path"], file["filename"].encode())

    output = await executor.run(
        upload(sshd, remote / "out", "{{steps.pull.output.files}}", create_directories=True), run
    )

    assert output["file_count"] == 2
    assert sorted(path.name for path in (remote / "out").iterdir()) == ["a.csv", "b.csv"]
    single = await executor.run(
        upload(sshd, f"{remote}/one/", "{{steps.pull.output.files[1]}}", create_directories=True),
        run,
    )
    assert single["files"][0]["remote_path"] == f"{remote}/one/b.csv"


async def test_create_directories(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    run = step_run(tmp_path, sshd)
    await with_object(run, SOURCE, b"x")
    target = f"{remote}/inbound/2026/01/"
    with pytest.raises(StepFailed, match=r"/inbound/2026/01 does not exist \(create_directories"):
        await executor.run(upload(sshd, target, SOURCE), run)
    await executor.run(upload(sshd, target, SOURCE, create_directories=True), run)
    assert (remote / "inbound" / "2026" / "01" / "report.csv").read_bytes() == b"x"


async def test_overwrite_false_refuses_before_sending(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    put_remote(sshd, remote / "report.csv", b"old")
    run = step_run(tmp_path, sshd)
    await with_object(run, SOURCE, b"new")
    with pytest.raises(StepFailed, match=r"/report\.csv already exists and overwrite is false"):
        await executor.run(upload(sshd, f"{remote}/", SOURCE, overwrite=False), run)
    assert (remote / "report.csv").read_bytes() == b"old"
    assert temp_files(remote) == []
    await executor.run(upload(sshd, f"{remote}/", SOURCE), run)  # overwrite: true (default)
    assert (remote / "report.csv").read_bytes() == b"new"


async def test_overwrite_false_never_replaces_a_file_that_appears_meanwhile(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    run = step_run(tmp_path, sshd)
    random_file(tmp_path / "big.bin", 64 * MiB)
    await run.objects.put_file(SOURCE, tmp_path / "big.bin")
    task = asyncio.create_task(
        executor.run(upload(sshd, f"{remote}/", SOURCE, overwrite=False), run)
    )
    await wait_for(lambda: bool(temp_files(remote)))
    put_remote(sshd, remote / "report.csv", b"someone else's")  # after the check, before rename

    with pytest.raises(StepFailed, match="already exists and overwrite is false"):
        await task
    assert (remote / "report.csv").read_bytes() == b"someone else's"
    assert temp_files(remote) == []


async def test_readers_never_see_half_a_file(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    size = 64 * MiB
    digest = random_file(tmp_path / "big.bin", size)
    run = step_run(tmp_path, sshd)
    await run.objects.put_file(SOURCE, tmp_path / "big.bin")
    seen_sizes: set[int] = set()
    saw_temp = threading.Event()
    done = threading.Event()

    def watch() -> None:  # a reader polling the directory, as a partner's job would
        while not done.is_set():
            if temp_files(remote):
                saw_temp.set()
            with contextlib.suppress(FileNotFoundError):
                seen_sizes.add((remote / "report.csv").stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        await executor.run(upload(sshd, f"{remote}/", SOURCE), run)
    finally:
        done.set()
        watcher.join()

    assert saw_temp.is_set()
    assert seen_sizes <= {size}
    assert sha256_file(remote / "report.csv") == digest
    assert temp_files(remote) == []


async def test_missing_source_fails_before_connecting(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    start = sshd.log_size()
    with pytest.raises(StepFailed, match=r"source_path: no object '.*/nothing\.csv'"):
        await executor.run(
            upload(sshd, f"{remote}/", "files/nothing.csv"), step_run(tmp_path, sshd)
        )
    assert "Connection from" not in sshd.log_text(start)


@pytest.mark.parametrize("value", ["", "{{steps.pull.output.file_count}}"])
async def test_a_source_that_is_no_file(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path, value: str
) -> None:
    earlier = {"status": "succeeded", "output": {"files": [], "file_count": 0}}
    run = step_run(tmp_path, sshd, steps={"pull": earlier})
    with pytest.raises(StepFailed, match="source_path"):
        await executor.run(upload(sshd, f"{remote}/", value), run)


async def test_permission_denied(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    locked = remote / "locked"
    locked.mkdir(mode=0o555)  # owned by root: the test user may not write there
    run = step_run(tmp_path, sshd)
    await with_object(run, SOURCE, b"x")
    with pytest.raises(StepFailed, match=r"permission denied writing to .*/locked"):
        await executor.run(upload(sshd, f"{locked}/", SOURCE), run)


async def test_a_disconnect_mid_upload_never_shows_a_half_file(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    random_file(tmp_path / "big.bin", 96 * MiB)
    run = step_run(tmp_path, sshd)
    await run.objects.put_file(SOURCE, tmp_path / "big.bin")
    task = asyncio.create_task(executor.run(upload(sshd, f"{remote}/", SOURCE), run))

    def started() -> bool:
        return any(path.stat().st_size > 4 * MiB for path in temp_files(remote))

    await wait_for(started)
    assert sshd.kill_sessions() >= 1

    with pytest.raises(StepFailed, match=r"connection broke while writing .*/report\.csv"):
        await task
    assert not (remote / "report.csv").exists()


async def test_a_cancelled_upload_removes_its_temporary_file(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    random_file(tmp_path / "big.bin", 96 * MiB)
    run = step_run(tmp_path, sshd)
    await run.objects.put_file(SOURCE, tmp_path / "big.bin")
    task = asyncio.create_task(executor.run(upload(sshd, f"{remote}/", SOURCE), run))
    await wait_for(lambda: bool(temp_files(remote)))

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(remote.iterdir()) == []


async def test_a_stalled_server_fails_after_timeout_seconds(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    random_file(tmp_path / "big.bin", 96 * MiB)
    run = step_run(tmp_path, sshd)
    await run.objects.put_file(SOURCE, tmp_path / "big.bin")
    task = asyncio.create_task(
        executor.run(upload(sshd, f"{remote}/", SOURCE, timeout_seconds=1), run)
    )
    await wait_for(lambda: bool(temp_files(remote)))
    assert sshd.signal_sessions(signal.SIGSTOP) == 1
    try:
        with pytest.raises(StepFailed, match=r"no answer for 1 s \(timeout_seconds\)"):
            await asyncio.wait_for(task, timeout=8)
    finally:
        sshd.kill_sessions()
    assert not (remote / "report.csv").exists()


@pytest.mark.slow
async def test_200_mib_with_bounded_memory(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    digest = random_file(tmp_path / "large.bin", 200 * MiB)
    run = step_run(tmp_path, sshd)
    await run.objects.put_file(SOURCE, tmp_path / "large.bin")
    (tmp_path / "large.bin").unlink()
    warm_up = "jobs/job-1/executions/exec-1/output/warm-up.bin"
    await run.objects.put(warm_up, bytes(16 * MiB))
    await executor.run(upload(sshd, f"{remote}/", warm_up), run)  # threads, buffers

    with PeakRss() as memory:
        output = await executor.run(upload(sshd, f"{remote}/", SOURCE), run)

    assert output["files"][0]["size"] == 200 * MiB
    assert sha256_file(remote / "report.csv") == digest
    assert memory.growth < 64 * MiB, f"{memory.growth / MiB:.1f} MiB"


async def test_the_example_jobs_upload_step(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    # jobs-example/jobs/partner-sftp-upload.json, pointed at the test server instead of
    # sftp.partner.example (its host, port, host key, user and a folder that user owns)
    job = Job.model_validate(json.loads(EXAMPLE.read_text()))
    step = job.steps[1]
    assert isinstance(step, SftpStep)
    config = step.config.model_copy(
        update={
            "host": sshd.host,
            "port": sshd.port,
            "host_key": sshd.fingerprint("ed25519"),
            "auth": step.config.auth.model_copy(update={"username": sshd.user}),
            "remote_path": f"{remote}/inbound/invoices/",
        }
    )
    report = {"status": "succeeded", "output": {"path": "files/invoices.csv"}}
    key = sshd.user_keys["ed25519"].read_text()
    run = step_run(tmp_path, sshd, steps={"report": report}, secrets={"PARTNER_SFTP_KEY": key})
    csv = (EXAMPLE.parents[1] / "files" / "invoices.csv").read_bytes()
    await run.objects.put("files/invoices.csv", csv)

    output = await executor.run(config, run)

    assert output["files"][0]["remote_path"] == f"{remote}/inbound/invoices/invoices.csv"
    assert (remote / "inbound" / "invoices" / "invoices.csv").read_bytes() == csv
