"""The sftp step's downloads against a real OpenSSH sshd (tests/services/sshd.py)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.runtime.sftp_fixtures import (
    MiB,
    PeakRss,
    download,
    executor,
    put_remote,
    random_file,
    remote,
    sha256_file,
    sshd,
    staged_bytes,
    step_run,
    wait_for,
)
from tests.services.sshd import SshServer
from vecron.errors import StepFailed
from vecron.runtime.steps.sftp import SftpStepExecutor
from vecron.stores import Stores

__all__ = ["executor", "remote", "sshd"]

OUTPUT = "jobs/job-1/executions/exec-1/output/"


async def stored(run_objects: object, prefix: str = OUTPUT) -> list[str]:
    return [info.path async for info in run_objects.list(prefix)]  # type: ignore[attr-defined]


async def test_one_file_into_each_store(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path, stores: Stores
) -> None:
    put_remote(sshd, remote / "report.csv", b"id,amount\n1,10\n")
    run = step_run(tmp_path, sshd, objects=stores.objects)

    output = await executor.run(download(sshd, remote / "report.csv"), run)

    assert output == {
        "files": [
            {
                "path": f"{OUTPUT}report.csv",
                "filename": "report.csv",
                "size": 15,
                "remote_path": str(remote / "report.csv"),
            }
        ],
        "file_count": 1,
        "remote_path": str(remote / "report.csv"),
    }
    assert await stores.objects.get(f"{OUTPUT}report.csv") == b"id,amount\n1,10\n"


async def test_wildcard_in_the_last_segment(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    for name in ("INV_2.xlsx", "INV_1.xlsx", "INV_1.csv", "other.xlsx", ".INV_hidden.xlsx"):
        put_remote(sshd, remote / "exports" / name, name.encode())
    put_remote(sshd, remote / "exports" / "INV_dir.xlsx" / "inner.xlsx", b"x")  # a directory
    run = step_run(tmp_path, sshd)

    output = await executor.run(download(sshd, f"{remote}/exports/INV_*.xlsx"), run)

    assert [file["filename"] for file in output["files"]] == ["INV_1.xlsx", "INV_2.xlsx"]
    assert output["file_count"] == 2
    assert output["remote_path"] == f"{remote}/exports/INV_*.xlsx"
    assert await run.objects.get(f"{OUTPUT}INV_2.xlsx") == b"INV_2.xlsx"


async def test_question_mark_and_classes(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    for name in ("a1.txt", "a2.txt", "a3.txt", "a10.txt"):
        put_remote(sshd, remote / name, b"x")
    output = await executor.run(download(sshd, f"{remote}/a[12].txt"), step_run(tmp_path, sshd))
    assert [file["filename"] for file in output["files"]] == ["a1.txt", "a2.txt"]
    output = await executor.run(download(sshd, f"{remote}/a?.txt"), step_run(tmp_path, sshd))
    assert output["file_count"] == 3


async def test_recursive_download_keeps_the_tree(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    put_remote(sshd, remote / "top.csv", b"top")
    put_remote(sshd, remote / "2026" / "01" / "jan.csv", b"jan")
    put_remote(sshd, remote / "2026" / "02" / "feb.csv", b"feb")
    put_remote(sshd, remote / "2026" / "02" / "notes.txt", b"skip")
    put_remote(sshd, remote / ".cache" / "old.csv", b"skip")  # the wildcard skips hidden folders
    run = step_run(tmp_path, sshd)

    output = await executor.run(download(sshd, f"{remote}/*.csv", recursive=True), run)

    assert [file["path"] for file in output["files"]] == [
        f"{OUTPUT}2026/01/jan.csv",
        f"{OUTPUT}2026/02/feb.csv",
        f"{OUTPUT}top.csv",
    ]
    assert output["files"][0]["filename"] == "jan.csv"
    assert output["files"][0]["remote_path"] == f"{remote}/2026/01/jan.csv"
    assert await run.objects.get(f"{OUTPUT}2026/02/feb.csv") == b"feb"


async def test_a_directory_without_wildcard(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    put_remote(sshd, remote / "out" / "a.txt", b"a")
    put_remote(sshd, remote / "out" / ".b.txt", b"b")
    put_remote(sshd, remote / "out" / "sub" / "c.txt", b"c")
    flat = await executor.run(download(sshd, f"{remote}/out/"), step_run(tmp_path, sshd))
    assert [file["filename"] for file in flat["files"]] == [".b.txt", "a.txt"]
    tree = await executor.run(
        download(sshd, f"{remote}/out", recursive=True), step_run(tmp_path, sshd)
    )
    assert tree["file_count"] == 3


async def test_a_missing_file_fails(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed, match=r"/missing\.csv does not exist"):
        await executor.run(download(sshd, remote / "missing.csv"), step_run(tmp_path, sshd))


async def test_a_missing_directory_fails_even_with_on_no_match_succeed(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    config = download(sshd, f"{remote}/nowhere/*.csv", on_no_match="succeed")
    with pytest.raises(StepFailed, match=r"/nowhere does not exist"):
        await executor.run(config, step_run(tmp_path, sshd))


async def test_no_match_fails_by_default(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    put_remote(sshd, remote / "a.txt", b"a")
    with pytest.raises(StepFailed, match=r"no file matches .*\*\.csv \(on_no_match: succeed"):
        await executor.run(download(sshd, f"{remote}/*.csv"), step_run(tmp_path, sshd))


async def test_no_match_succeeds_with_zero_files_when_asked(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    run = step_run(tmp_path, sshd)
    output = await executor.run(download(sshd, f"{remote}/*.csv", on_no_match="succeed"), run)
    assert output == {"files": [], "file_count": 0, "remote_path": f"{remote}/*.csv"}


async def test_a_wildcard_before_the_last_segment_is_refused(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed, match="only appear in the last segment"):
        await executor.run(download(sshd, f"{remote}/*/a.csv"), step_run(tmp_path, sshd))


async def test_permission_denied(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    put_remote(sshd, remote / "ok.csv", b"ok")
    secret = put_remote(sshd, remote / "secret.csv", b"no", mode=0o000)
    run = step_run(tmp_path, sshd)
    with pytest.raises(StepFailed, match=r"permission denied reading .*/secret\.csv"):
        await executor.run(download(sshd, secret), run)
    # a wildcard that reaches it fails whole: the file before it is not left behind
    with pytest.raises(StepFailed, match="permission denied"):
        await executor.run(download(sshd, f"{remote}/*.csv"), run)
    assert await stored(run.objects) == []


async def test_an_unreadable_directory(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    put_remote(sshd, remote / "locked" / "a.csv", b"a")
    (remote / "locked").chmod(0o000)
    with pytest.raises(StepFailed, match=r"permission denied listing the directory .*/locked"):
        await executor.run(download(sshd, f"{remote}/locked/*"), step_run(tmp_path, sshd))


async def test_a_disconnect_mid_transfer_leaves_no_object(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path, stores: Stores
) -> None:
    put_remote(sshd, remote / "a-first.bin", b"complete")
    big = put_remote(sshd, remote / "b-big.bin")
    random_file(big, 96 * MiB)
    run = step_run(tmp_path, sshd, objects=stores.objects)
    work = tmp_path / "sftp-work"
    task = asyncio.create_task(executor.run(download(sshd, f"{remote}/*.bin"), run))

    await wait_for(lambda: staged_bytes(work) > 4 * MiB)
    assert sshd.kill_sessions() >= 1

    with pytest.raises(StepFailed, match=r"connection broke while reading .*/b-big\.bin"):
        await task
    assert await stored(run.objects) == []  # neither the half file nor the whole one
    assert list(work.iterdir()) == []


async def test_a_cancelled_download_leaves_nothing(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    random_file(put_remote(sshd, remote / "big.bin"), 96 * MiB)
    run = step_run(tmp_path, sshd)
    work = tmp_path / "sftp-work"
    task = asyncio.create_task(executor.run(download(sshd, remote / "big.bin"), run))
    await wait_for(lambda: staged_bytes(work) > 4 * MiB)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await stored(run.objects) == []
    assert list(work.iterdir()) == []


async def test_a_stalled_server_fails_after_timeout_seconds(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    random_file(put_remote(sshd, remote / "big.bin"), 64 * MiB)
    run = step_run(tmp_path, sshd)
    work = tmp_path / "sftp-work"
    config = download(sshd, remote / "big.bin", timeout_seconds=1)
    task = asyncio.create_task(executor.run(config, run))
    await wait_for(lambda: staged_bytes(work) > MiB)
    assert sshd.signal_sessions(signal.SIGSTOP) == 1  # a stall, not a broken connection
    try:
        stalled = r"no answer for 1 s \(timeout_seconds\) while reading"
        with pytest.raises(StepFailed, match=stalled):
            await asyncio.wait_for(task, timeout=8)
    finally:
        sshd.kill_sessions()
    assert await stored(run.objects) == []


@pytest.mark.slow
async def test_200_mib_with_bounded_memory(
    executor: SftpStepExecutor, sshd: SshServer, remote: Path, tmp_path: Path
) -> None:
    digest = random_file(put_remote(sshd, remote / "large.bin"), 200 * MiB)
    random_file(put_remote(sshd, remote / "warm-up.bin"), 16 * MiB)
    run = step_run(tmp_path, sshd)
    await executor.run(download(sshd, remote / "warm-up.bin"), run)  # threads, buffers

    with PeakRss() as memory:
        output = await executor.run(download(sshd, remote / "large.bin"), run)

    assert output["files"][0]["size"] == 200 * MiB
    local = tmp_path / "objects" / output["files"][0]["path"]
    assert sha256_file(local) == digest
    assert memory.growth < 64 * MiB, f"{memory.growth / MiB:.1f} MiB"
