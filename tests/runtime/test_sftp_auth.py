"""The sftp step's authentication and connection errors, against a real OpenSSH sshd.

Credentials come through ``${secret:…}`` and must never show in an error, a log line or
the output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.runtime.http_target import free_port, serve_raw_tcp
from tests.runtime.sftp_fixtures import (
    download,
    executor,
    keygen,
    put_remote,
    remote,
    sshd,
    step_run,
)
from tests.services.sshd import SshServer
from vecron.errors import StepFailed
from vecron.runtime.steps import default_executors
from vecron.runtime.steps.sftp import SftpStepExecutor

__all__ = ["executor", "remote", "sshd"]


def key_auth(sshd: SshServer, **auth: str) -> dict[str, str]:
    return {"type": "ssh_key", "username": sshd.user, **auth}


@pytest.fixture
def hello(sshd: SshServer, remote: Path) -> Path:
    return put_remote(sshd, remote / "hello.txt", b"hello")


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        for line in secret.splitlines():
            if len(line) > 8 and not line.startswith("-----"):
                assert line not in text


def test_the_executor_is_registered() -> None:
    assert isinstance(default_executors()["sftp"], SftpStepExecutor)


async def test_password(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    run = step_run(tmp_path, sshd)
    output = await executor.run(download(sshd, hello), run)
    assert output["file_count"] == 1
    assert sshd.password not in repr(output)


async def test_a_wrong_password_is_named_but_not_shown(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-4711"
    run = step_run(tmp_path, sshd, secrets={"SFTP_PASSWORD": wrong})
    with pytest.raises(StepFailed) as caught:
        await executor.run(download(sshd, hello), run)
    message = str(caught.value)
    assert f"authentication as {sshd.user!r} failed: the server rejected the password" in message
    assert_hidden(message + caplog.text, wrong, sshd.password)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
async def test_private_key_from_a_secret(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path, kind: str
) -> None:
    key = sshd.user_keys[kind].read_text()
    run = step_run(tmp_path, sshd, secrets={"SFTP_KEY": key})
    config = download(sshd, hello, auth=key_auth(sshd, private_key="${secret:SFTP_KEY}"))
    assert (await executor.run(config, run))["file_count"] == 1


async def test_private_key_path(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    auth = key_auth(sshd, private_key_path=str(sshd.user_keys["ecdsa"]))
    output = await executor.run(download(sshd, hello, auth=auth), step_run(tmp_path, sshd))
    assert output["file_count"] == 1


async def test_a_key_pasted_on_one_line_with_escaped_newlines(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    one_line = sshd.user_keys["ed25519"].read_text().strip().replace("\n", "\\n")
    run = step_run(tmp_path, sshd, secrets={"SFTP_KEY": one_line})
    config = download(sshd, hello, auth=key_auth(sshd, private_key="${secret:SFTP_KEY}"))
    assert (await executor.run(config, run))["file_count"] == 1


async def test_a_key_with_a_passphrase(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = sshd.user_keys["ed25519-passphrase"].read_text()
    secrets = {"SFTP_KEY": key, "SFTP_PASSPHRASE": sshd.passphrase}
    auth = key_auth(sshd, private_key="${secret:SFTP_KEY}", passphrase="${secret:SFTP_PASSPHRASE}")
    run = step_run(tmp_path, sshd, secrets=secrets)
    assert (await executor.run(download(sshd, hello, auth=auth), run))["file_count"] == 1

    without = key_auth(sshd, private_key="${secret:SFTP_KEY}")
    with pytest.raises(StepFailed, match=r"private_key is encrypted: set auth\.passphrase"):
        await executor.run(download(sshd, hello, auth=without), run)

    wrong = step_run(tmp_path, sshd, secrets={**secrets, "SFTP_PASSPHRASE": "wrong-phrase-123"})
    with pytest.raises(StepFailed, match="private_key: wrong passphrase") as caught:
        await executor.run(download(sshd, hello, auth=auth), wrong)
    assert_hidden(str(caught.value) + caplog.text, key, sshd.passphrase, "wrong-phrase-123")


async def test_a_passphrase_for_a_plain_key_is_ignored(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    auth = key_auth(sshd, private_key_path=str(sshd.user_keys["rsa"]), passphrase="unused-123")
    output = await executor.run(download(sshd, hello, auth=auth), step_run(tmp_path, sshd))
    assert output["file_count"] == 1


async def test_a_key_the_server_does_not_know(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    other = keygen(tmp_path / "other")
    auth = key_auth(sshd, private_key_path=str(other))
    with pytest.raises(StepFailed, match="failed: the server rejected the public key"):
        await executor.run(download(sshd, hello, auth=auth), step_run(tmp_path, sshd))


async def test_text_that_is_no_key(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3Qta2V5\n-----END"
    run = step_run(tmp_path, sshd, secrets={"SFTP_KEY": garbage})
    auth = key_auth(sshd, private_key="${secret:SFTP_KEY}")
    with pytest.raises(StepFailed, match="private_key is not a private key") as caught:
        await executor.run(download(sshd, hello, auth=auth), run)
    assert_hidden(str(caught.value) + caplog.text, garbage)


async def test_a_missing_key_file(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    auth = key_auth(sshd, private_key_path=str(tmp_path / "id_missing"))
    with pytest.raises(StepFailed, match=r"id_missing does not exist on the worker"):
        await executor.run(download(sshd, hello, auth=auth), step_run(tmp_path, sshd))


async def test_a_user_the_server_does_not_let_in(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    # root may not log in (PermitRootLogin no, AllowUsers): sshd answers as to a wrong
    # password, so that nobody learns which accounts exist
    auth = {"type": "password", "username": "root", "password": "${secret:SFTP_PASSWORD}"}
    with pytest.raises(StepFailed, match="authentication as 'root' failed"):
        await executor.run(download(sshd, hello, auth=auth), step_run(tmp_path, sshd))


async def test_connection_refused(
    executor: SftpStepExecutor, sshd: SshServer, tmp_path: Path
) -> None:
    config = download(sshd, "/x", port=free_port())
    with pytest.raises(StepFailed, match=r"connection refused by 127\.0\.0\.1:\d+"):
        await executor.run(config, step_run(tmp_path, sshd))


async def test_a_server_that_is_not_ssh(
    executor: SftpStepExecutor, sshd: SshServer, tmp_path: Path
) -> None:
    with serve_raw_tcp(b"HTTP/1.1 400 Bad Request\r\n\r\n") as url:
        config = download(sshd, "/x", port=urlsplit(url).port, timeout_seconds=2)
        with pytest.raises(StepFailed, match=r"127\.0\.0\.1:\d+ does not speak SSH"):
            await executor.run(config, step_run(tmp_path, sshd))


async def test_an_unknown_host(executor: SftpStepExecutor, sshd: SshServer, tmp_path: Path) -> None:
    config = download(sshd, "/x", host="sftp.partner.invalid")
    with pytest.raises(StepFailed, match=r"cannot resolve host 'sftp\.partner\.invalid'"):
        await executor.run(config, step_run(tmp_path, sshd))
