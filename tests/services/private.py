"""Private servers for the failure tests: NATS, Redis and PostgreSQL of the test's own,
on free ports, so that a test can stop and restart one without touching the shared
servers the rest of the suite uses.

Each is a context manager that yields a :class:`PrivateServer`: its URL, ``stop()``
(SIGTERM, then SIGKILL after a grace period) and ``start()`` on the same port and the
same data directory, so that what the server keeps on disk survives a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import require

NATS_SERVER = "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


@dataclass
class PrivateServer:
    url: str
    port: int
    command: Callable[[], list[str]]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None)
    stopper: Callable[[], None] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.stopper is not None:
            self.stopper()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def private_nats(root: Path) -> Iterator[PrivateServer]:
    require(Path(NATS_SERVER).exists(), f"{NATS_SERVER} (Debian's nats-server)")
    port = free_port()
    store = root / "nats"
    store.mkdir(parents=True)
    server = PrivateServer(
        url=f"nats://127.0.0.1:{port}",
        port=port,
        command=lambda: [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        log=root / "nats.log",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def private_redis(root: Path) -> Iterator[PrivateServer]:
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server")
    assert binary is not None
    port = free_port()
    server = PrivateServer(
        url=f"redis://127.0.0.1:{port}/0",
        port=port,
        command=lambda: [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        log=root / "redis.log",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@contextlib.contextmanager
def private_postgres(root: Path) -> Iterator[PrivateServer]:
    """A PostgreSQL cluster of its own (initdb), run as the ``postgres`` user when the
    tests run as root (the server refuses to run as root)."""
    bin_dir = _pg_bin()
    require(bin_dir is not None, "PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    assert bin_dir is not None
    port = free_port()
    # Outside pytest's folders: those are private to root, and the server runs as
    # `postgres` when the tests run as root (it refuses to run as root).
    home = Path(tempfile.mkdtemp(prefix="vecron-pg-"))
    data = home / "pgdata"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "vecron"],
        check=True,
        capture_output=True,
    )
    socket_dir = home / "pgsock"
    socket_dir.mkdir()
    if as_user:
        shutil.chown(socket_dir, "postgres")
    server = PrivateServer(
        url=f"postgresql://vecron@127.0.0.1:{port}/postgres",
        port=port,
        command=lambda: [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(socket_dir),
            "-c",
            "fsync=off",
        ],
        log=root / "postgres.log",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
