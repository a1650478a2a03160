"""An SFTP server for tests: OpenSSH's ``sshd`` on a free loopback port.

DESIGN.md ("Test services"): SFTP comes from Debian's ``openssh-server``, run as
``sshd -D -p PORT -f CONFIG`` with throwaway host keys. :func:`openssh_server` writes
a config into a temporary folder, generates host keys (ed25519, ECDSA, RSA) and user
keys (the same three, plus an ed25519 key with a passphrase) with ``ssh-keygen``,
authorizes the user keys, starts ``sshd``, waits until it answers with an SSH banner,
and on exit kills it and removes the folder.

Logins go to a system account of the server's own, ``vecron-sftp-<pid>`` (shell
``/usr/sbin/nologin``, no home; sshd runs ``internal-sftp`` for it, nothing else), with
a random password, so password authentication runs against the real ``/etc/shadow``
(``UsePAM no``). One account per test process keeps two test runs on one machine apart;
it is deleted on exit, and accounts left by processes that died are deleted at the next
start. All of that needs root, as sshd itself does to switch users:
:func:`sshd_unavailable` says why a machine cannot run it.

Run ``python -m tests.services.sshd`` to start one by hand; it prints how to connect.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
USER_PREFIX = "vecron-sftp-"
LOOPBACK = "127.0.0.1"
KEY_TYPES = ("ed25519", "ecdsa", "rsa")
STARTUP_TIMEOUT_SECONDS = 15.0
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True, slots=True, kw_only=True)
class SshServer:
    """A running sshd: where it listens, who may log in and with what.

    ``root`` is a folder owned by ``user`` for the files tests exchange.
    ``host_keys`` and ``user_keys`` map a key type (``ed25519``, ``ecdsa``, ``rsa``) to a
    private key file; ``user_keys["ed25519-passphrase"]`` is encrypted with
    ``passphrase``. ``log`` is sshd's log (``LogLevel DEBUG1``).
    """

    host: str
    port: int
    user: str
    password: str
    root: Path
    workdir: Path
    host_keys: dict[str, Path]
    user_keys: dict[str, Path]
    passphrase: str
    log: Path
    pid: int

    def public_host_key(self, key_type: str) -> str:
        """``ssh-ed25519 AAAA…``: the public host key of ``key_type``, without a comment."""
        kind, blob, *_ = Path(f"{self.host_keys[key_type]}.pub").read_text().split()
        return f"{kind} {blob}"

    def known_hosts_line(self, key_type: str) -> str:
        """A known_hosts line for this server (``[127.0.0.1]:PORT ssh-ed25519 AAAA…``)."""
        return f"[{self.host}]:{self.port} {self.public_host_key(key_type)}"

    def fingerprint(self, key_type: str) -> str:
        """``SHA256:…``, as ``ssh-keygen -l`` prints it."""
        blob = base64.b64decode(self.public_host_key(key_type).split()[1])
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
        return f"SHA256:{digest.rstrip('=')}"

    def log_text(self, start: int = 0) -> str:
        """sshd's log from byte ``start`` on."""
        with self.log.open("rb") as file:
            file.seek(start)
            return file.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def session_pids(self) -> list[int]:
        """Every process serving a connection: the listener's children (one per
        connection) and theirs (the privilege-separated session that runs SFTP)."""
        found: list[int] = []
        pending = [self.pid]
        while pending:
            for child in _children(pending.pop()):
                found.append(child)
                pending.append(child)
        return found

    def signal_sessions(self, signum: int) -> int:
        """Send ``signum`` to every connection's processes; the listener is spared.
        SIGKILL ends them as a network failure would; SIGSTOP freezes them (a server
        that stalls). Returns how many connections there were."""
        connections = len(_children(self.pid))
        for pid in reversed(self.session_pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return connections

    def kill_sessions(self) -> int:
        """SIGKILL every connection (see :meth:`signal_sessions`)."""
        return self.signal_sessions(signal.SIGKILL)

    def give(self, path: Path) -> Path:
        """Make ``path`` (a file or folder the test wrote as root) the test user's."""
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        return path


def sshd_unavailable() -> str | None:
    """Why this machine cannot run the test sshd, or None when it can."""
    if not SSHD.is_file():
        return f"{SSHD} is missing (apt-get install openssh-server; scripts/test-services.sh)"
    if shutil.which(SSH_KEYGEN) is None:
        return "ssh-keygen is missing (apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "the test sshd needs root (it switches to a dedicated test user)"
    for tool in ("useradd", "chpasswd", "userdel"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (needed to set up the test account)"
    return None


@contextlib.contextmanager
def openssh_server(*, startup_timeout: float = STARTUP_TIMEOUT_SECONDS) -> Iterator[SshServer]:
    """Start a throwaway sshd on a free loopback port; yield it once it answers."""
    problem = sshd_unavailable()
    if problem is not None:
        raise RuntimeError(problem)
    workdir = Path(tempfile.mkdtemp(prefix="vecron-sshd-"))
    process: subprocess.Popen[bytes] | None = None
    password = secrets.token_urlsafe(18)
    try:
        workdir.chmod(0o755)  # sshd reads authorized_keys as the user
        user = _create_user(password)
        root = workdir / "files"
        root.mkdir()
        passphrase = secrets.token_urlsafe(12)
        host_keys = {kind: _keygen(workdir / f"ssh_host_{kind}_key", kind) for kind in KEY_TYPES}
        user_keys = {kind: _keygen(workdir / f"id_{kind}", kind) for kind in KEY_TYPES}
        user_keys["ed25519-passphrase"] = _keygen(
            workdir / "id_ed25519_passphrase", "ed25519", passphrase
        )
        authorized = workdir / "authorized_keys"
        authorized.write_text("".join(Path(f"{key}.pub").read_text() for key in user_keys.values()))
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        for attempt in range(3):
            port = _free_port()
            config = _write_config(workdir, port, host_keys, authorized)
            log = workdir / f"sshd-{port}.log"
            log.touch()
            process = subprocess.Popen(
                [str(SSHD), "-D", "-p", str(port), "-f", str(config), "-E", str(log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            if _wait_until_ready(process, port, log, startup_timeout):
                break
            _stop(process)
            process = None
            if attempt == 2:
                raise RuntimeError(f"sshd did not start:\n{log.read_text()[-4000:]}")
        assert process is not None
        server = SshServer(
            host=LOOPBACK,
            port=port,
            user=user,
            password=password,
            root=root,
            workdir=workdir,
            host_keys=host_keys,
            user_keys=user_keys,
            passphrase=passphrase,
            log=log,
            pid=process.pid,
        )
        server.give(root)
        yield server
    finally:
        if process is not None:
            _stop(process)
        _delete_user(f"{USER_PREFIX}{os.getpid()}")
        shutil.rmtree(workdir, ignore_errors=True)


def _create_user(password: str) -> str:
    """This process's test account, with ``password``; stale ones are removed first."""
    for entry in pwd.getpwall():
        owner = entry.pw_name.removeprefix(USER_PREFIX)
        ours = entry.pw_name.startswith(USER_PREFIX) and owner.isdigit()
        if ours and (int(owner) == os.getpid() or not Path(f"/proc/{owner}").exists()):
            _delete_user(entry.pw_name)
    user = f"{USER_PREFIX}{os.getpid()}"
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["chpasswd"], input=f"{user}:{password}\n".encode(), check=True, capture_output=True
    )
    return user


def _delete_user(user: str) -> None:
    subprocess.run(["userdel", user], check=False, capture_output=True)


def _keygen(path: Path, kind: str, passphrase: str = "") -> Path:
    bits = ["-b", "2048"] if kind == "rsa" else []  # 2048: a quick throwaway key
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, *bits, "-N", passphrase, "-C", "vecron-test", "-f", path],
        check=True,
        capture_output=True,
    )
    return path


def _write_config(workdir: Path, port: int, host_keys: dict[str, Path], authorized: Path) -> Path:
    lines = [
        f"ListenAddress {LOOPBACK}:{port}",
        *(f"HostKey {path}" for path in host_keys.values()),
        f"PidFile {workdir / f'sshd-{port}.pid'}",
        f"AuthorizedKeysFile {authorized}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin no",
        f"AllowUsers {USER_PREFIX}{os.getpid()}",
        "UseDNS no",
        "PermitTTY no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "MaxStartups 64:30:128",
        "MaxSessions 64",
        "LogLevel DEBUG1",
        "Subsystem sftp internal-sftp",
        "ForceCommand internal-sftp",
    ]
    config = workdir / f"sshd_config-{port}"
    config.write_text("\n".join(lines) + "\n")
    return config


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout: float
) -> bool:
    """True once sshd sends its banner; False when it exited (a port taken meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-2.0-"):
                    return True
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"sshd did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The listener's session children are in its process group (start_new_session).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stderr is not None:
        process.stderr.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def main() -> None:  # pragma: no cover - a developer's helper
    """Start a server until SIGINT or SIGTERM; print how to connect."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    with openssh_server() as server:
        print(f"sftp -P {server.port} -i {server.user_keys['ed25519']} ", end="")
        print(f"-o UserKnownHostsFile=/dev/null {server.user}@{server.host}")
        print(f"password: {server.password}; files: {server.root}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                signal.pause()


if __name__ == "__main__":  # pragma: no cover
    main()
