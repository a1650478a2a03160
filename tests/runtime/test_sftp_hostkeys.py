"""Host key verification of the sftp step, against a real OpenSSH sshd.

The claim that matters: a server whose key is not the trusted one never gets a
credential. sshd's own log (``LogLevel DEBUG1``) proves it: the key exchange finishes
(``KEX done``) and no ``userauth-request`` follows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import subprocess
from pathlib import Path

import pytest

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
from vecron.runtime.steps.sftp import SftpStepExecutor
from vecron.runtime.steps.sftp_hostkeys import host_matches, parse_host_key

__all__ = ["executor", "remote", "sshd"]


@pytest.fixture
def hello(sshd: SshServer, remote: Path) -> Path:
    return put_remote(sshd, remote / "hello.txt", b"hello")


def public_key(path: Path) -> str:
    kind, blob, *_ = Path(f"{path}.pub").read_text().split()
    return f"{kind} {blob}"


async def no_credentials_reached(sshd: SshServer, start: int) -> str:
    """sshd's log since ``start``, once its side of the refused connection has ended;
    asserts that it finished a key exchange and saw no authentication attempt."""
    for _ in range(500):
        log = sshd.log_text(start)
        if "KEX done" in log and "Connection closed by 127.0.0.1" in log.split("KEX done")[-1]:
            break
        await asyncio.sleep(0.01)
    assert "KEX done" in log
    assert "userauth-request" not in log
    assert "Failed password" not in log
    assert "Accepted" not in log
    return log


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
async def test_a_known_hosts_line_of_each_key_type(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    *,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.INFO, logger="tests.runtime")
    config = download(sshd, hello, host_key=sshd.known_hosts_line(kind))
    assert (await executor.run(config, step_run(tmp_path, sshd)))["file_count"] == 1
    # the server was asked for the pinned key type, though it prefers ed25519
    assert f"connected (host key {sshd.public_host_key(kind).split()[0]} " in caplog.text


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
async def test_a_sha256_fingerprint_of_any_of_its_keys(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path, kind: str
) -> None:
    config = download(sshd, hello, host_key=sshd.fingerprint(kind))
    assert (await executor.run(config, step_run(tmp_path, sshd)))["file_count"] == 1


async def test_several_lines_and_a_bare_public_key(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    other = public_key(keygen(tmp_path / "other"))
    pinned = f"# partner keys\n{other}\n\n{sshd.public_host_key('rsa')}\n"
    config = download(sshd, hello, host_key=pinned)
    assert (await executor.run(config, step_run(tmp_path, sshd)))["file_count"] == 1


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
async def test_a_known_hosts_file(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    hashed: bool,
) -> None:
    known_hosts = tmp_path / "known_hosts"
    other = public_key(keygen(tmp_path / "other"))
    known_hosts.write_text(
        f"other.example {other}\n"
        f"{sshd.host} {other}\n"  # port 22 only: not this server
        f"{sshd.known_hosts_line('ecdsa')}\n"
    )
    if hashed:
        subprocess.run(
            ["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True
        )
        assert sshd.host not in known_hosts.read_text()
    config = download(sshd, hello, host_key=None, known_hosts_path=str(known_hosts))
    assert (await executor.run(config, step_run(tmp_path, sshd)))["file_count"] == 1


async def test_a_known_hosts_file_without_the_host(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{sshd.host} {sshd.public_host_key('ed25519')}\n")  # port 22
    config = download(sshd, hello, host_key=None, known_hosts_path=str(known_hosts))
    with pytest.raises(StepFailed, match=r"no trusted host key for \[127\.0\.0\.1\]:\d+ in "):
        await executor.run(config, step_run(tmp_path, sshd))


async def test_a_revoked_key_is_refused_even_when_pinned(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"{sshd.known_hosts_line('ed25519')}\n@revoked * {sshd.public_host_key('ed25519')}\n"
    )
    config = download(
        sshd, hello, host_key=sshd.public_host_key("ed25519"), known_hosts_path=str(known_hosts)
    )
    with pytest.raises(StepFailed, match="presented a revoked ssh-ed25519 key"):
        await executor.run(config, step_run(tmp_path, sshd))


@pytest.mark.parametrize("pin", ["key", "fingerprint"])
async def test_a_wrong_host_key_fails_before_any_credential_is_sent(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    *,
    caplog: pytest.LogCaptureFixture,
    pin: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    impostor = public_key(keygen(tmp_path / "impostor"))
    blob = base64.b64decode(impostor.split()[1])
    fingerprint = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    host_key = impostor if pin == "key" else f"SHA256:{fingerprint}"
    start = sshd.log_size()

    with pytest.raises(StepFailed) as caught:
        await executor.run(download(sshd, hello, host_key=host_key), step_run(tmp_path, sshd))

    message = str(caught.value)
    assert "host key verification failed" in message
    assert f"presented a ssh-ed25519 key {sshd.fingerprint('ed25519')}" in message
    assert "No credentials were sent" in message
    await no_credentials_reached(sshd, start)
    assert sshd.password not in caplog.text


async def test_the_log_proof_would_see_an_attempt(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    # the control for the test above: with the right key, sshd logs the attempt
    start = sshd.log_size()
    run = step_run(tmp_path, sshd, secrets={"SFTP_PASSWORD": "wrong-password-1"})
    with pytest.raises(StepFailed, match="rejected the password"):
        await executor.run(download(sshd, hello), run)
    with pytest.raises(AssertionError):
        await no_credentials_reached(sshd, start)


async def test_a_pinned_type_the_server_lacks(
    executor: SftpStepExecutor, sshd: SshServer, hello: Path, tmp_path: Path
) -> None:
    p384 = public_key(keygen(tmp_path / "p384", "ecdsa", bits=384))  # the server has P-256
    config = download(sshd, hello, host_key=p384)
    with pytest.raises(
        StepFailed, match=r"offers no key of the pinned types \(ecdsa-sha2-nistp384"
    ):
        await executor.run(config, step_run(tmp_path, sshd))


async def test_no_host_key_and_no_known_hosts(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts
    config = download(sshd, hello, host_key=None)
    with pytest.raises(StepFailed, match=r"no trusted host key for .* set host_key"):
        await executor.run(config, step_run(tmp_path, sshd))


async def test_the_workers_own_known_hosts(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line("rsa") + "\n")
    config = download(sshd, hello, host_key=None)
    assert (await executor.run(config, step_run(tmp_path, sshd)))["file_count"] == 1


async def test_verify_host_key_false_warns_on_every_run(
    executor: SftpStepExecutor,
    sshd: SshServer,
    hello: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = download(sshd, hello, host_key=None, verify_host_key=False)
    for _ in range(2):
        assert (await executor.run(config, step_run(tmp_path, sshd)))["file_count"] == 1
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "verify_host_key" in record.getMessage()
    ]
    assert len(warnings) == 2
    assert "is not checked" in warnings[0]


# --- parsing, without a server -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SHA256:short", "is not a SHA256 fingerprint"),
        ("ssh-ed25519 not-base64!", "is not valid base64"),
        ("host ssh-dss AAAAB3NzaC1kc3M=", "expected a known_hosts line"),
        ("@cert-authority * ssh-ed25519 AAAA", "markers such as @cert-authority"),
        ("# only a comment", "holds no key and no fingerprint"),
        ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==", "is not valid base64 of a key of that type"),
    ],
)
def test_malformed_host_keys(text: str, message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        parse_host_key(text)


def test_fingerprints_with_or_without_padding() -> None:
    digest = base64.b64encode(bytes(32)).decode()
    padded, bare = f"SHA256:{digest}", f"SHA256:{digest.rstrip('=')}"
    assert parse_host_key(padded)[1] == parse_host_key(bare)[1]


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        ("sftp.example,10.0.0.1", "sftp.example", True),
        ("SFTP.Example", "sftp.example", True),
        ("*.example", "sftp.example", True),
        ("*.example,!sftp.example", "sftp.example", False),
        ("sftp?.example", "sftp1.example", True),
        ("[sftp.example]:2222", "[sftp.example]:2222", True),
        ("sftp.example", "[sftp.example]:2222", False),
    ],
)
def test_host_patterns(patterns: str, name: str, expected: bool) -> None:
    assert host_matches(patterns, name) is expected


def test_hashed_host_names() -> None:
    salt = bytes(range(20))
    digest = hmac.new(salt, b"[127.0.0.1]:2222", hashlib.sha1).digest()
    field = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    assert host_matches(field, "[127.0.0.1]:2222")
    assert not host_matches(field, "127.0.0.1")
