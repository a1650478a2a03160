"""Opening an SFTP session with paramiko: connect, check the host key, authenticate.

Everything here blocks; the ``sftp`` step runs it in its own threads
(:mod:`vecron.runtime.steps.sftp`). The order is what keeps credentials safe: the TCP
connection and the SSH key exchange come first, then the key the server proved it holds
is checked (:mod:`~vecron.runtime.steps.sftp_hostkeys`), and only a server that passed
gets the password or a signature. A server holding several host keys is asked for one
of the pinned types first; when only fingerprints are pinned and the presented key does
not match, the other key types (ed25519, ECDSA, RSA) are asked for in turn, each on a
new connection that ends before authentication.

Speed. The transport asks for AES-GCM first (no separate MAC pass), advertises an
8 MiB window and 256 KiB packets, and reads and writes in requests as large as the
server's ``limits@openssh.com`` allows (up to 255 KiB; 32 KiB when it says nothing), so
that paramiko's per-packet Python cost is spread over many bytes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, Protocol, cast

import paramiko
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY
from paramiko.ssh_exception import IncompatiblePeer

from vecron.backends.objectstore.base import OperationCancelled
from vecron.errors import StepFailed
from vecron.runtime.steps.sftp_hostkeys import (
    ALGORITHMS_OF_KEY_TYPE,
    HostKeyCheck,
    fingerprint,
    host_key_check,
    key_type,
    key_types,
)
from vecron.runtime.steps.sftp_keys import Credentials, load_private_key

WINDOW_BYTES = 8 * 1024 * 1024
MAX_PACKET_BYTES = 256 * 1024
DEFAULT_REQUEST_BYTES = 32 * 1024
"""The SFTP read and write size every server takes (draft-ietf-secsh-filexfer)."""
MAX_REQUEST_BYTES = 255 * 1024
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "aes192-ctr",
)
KEY_FAMILIES = (
    ("ssh-ed25519",),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
    ("rsa-sha2-512", "rsa-sha2-256"),
)
"""Host key algorithms asked for together when looking for a fingerprint's key."""
_PROBE_LOG = logging.getLogger("vecron.sftp.key-probe")
_PROBE_LOG.propagate = False  # paramiko logs a refused probe as an error with a traceback
_PROBE_LOG.addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where to connect and as whom; ``timeout_seconds`` bounds connecting, the key
    exchange, authentication and any wait for the server while transferring."""

    host: str
    port: int
    username: str
    timeout_seconds: float

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"sftp://{self.username}@{self.address}"


class Abort:
    """Lets the event loop stop a session that runs in another thread.

    :meth:`check` raises :class:`OperationCancelled` once :meth:`cancel` was called
    (transfers check between chunks); :meth:`close_connection` also closes the socket and
    transport, which ends a read or write blocked on the network.

    It also tells the loop how far connecting got, for the circuit breaker: ``dialed``
    once a TCP connection was tried, ``answered`` once the server spoke SSH.
    """

    def __init__(self) -> None:
        self.dialed = False
        self.answered = False
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._closeables: list[_Closeable] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise OperationCancelled

    def cancel(self) -> None:
        self._cancelled.set()

    def track(self, closeable: _Closeable) -> None:
        with self._lock:
            self._closeables.append(closeable)
        if self._cancelled.is_set():
            closeable.close()

    def close_connection(self) -> None:
        self._cancelled.set()
        with self._lock:
            closeables, self._closeables = self._closeables, []
        for closeable in reversed(closeables):
            with contextlib.suppress(Exception):
                closeable.close()


class _Closeable(Protocol):
    def close(self) -> None: ...


@dataclass(slots=True)
class Connection:
    """An authenticated SFTP session and the request sizes its server takes."""

    transport: paramiko.Transport
    sftp: paramiko.SFTPClient
    read_size: int
    write_size: int
    presented_key: str  # "ssh-ed25519 SHA256:…", for the log

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sftp.close()
        self.drop()

    def drop(self) -> None:
        """Close the connection without a goodbye (it broke or stalled)."""
        with contextlib.suppress(Exception):
            self.transport.close()


def _cause(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:200] or type(exc).__name__


def open_connection(
    endpoint: Endpoint,
    credentials: Credentials,
    *,
    host_key: str | None,
    known_hosts_path: str | None,
    verify_host_key: bool,
    abort: Abort,
) -> Connection:
    """Read the trusted host keys and the private key, then :func:`connect`."""
    check = host_key_check(
        host=endpoint.host,
        port=endpoint.port,
        host_key=host_key,
        known_hosts_path=known_hosts_path,
        verify=verify_host_key,
    )
    key = load_private_key(credentials)
    return connect(endpoint, credentials, check, abort, key)


def connect(
    endpoint: Endpoint,
    credentials: Credentials,
    check: HostKeyCheck,
    abort: Abort,
    key: paramiko.PKey | None,
) -> Connection:
    """Connect, check the host key, authenticate and open the SFTP channel."""
    transport, blob = _verified_transport(endpoint, check, abort)
    try:
        presented = f"{key_type(blob)} {fingerprint(blob)}"
        _authenticate(transport, endpoint, credentials, key)
        abort.check()
        sftp = paramiko.SFTPClient.from_transport(
            transport, window_size=WINDOW_BYTES, max_packet_size=MAX_PACKET_BYTES
        )
        if sftp is None:
            raise StepFailed(f"{endpoint.label}: the server refused to open an SFTP channel")
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(endpoint.timeout_seconds)
        read_size, write_size = _request_sizes(sftp)
        return Connection(
            transport=transport,
            sftp=sftp,
            read_size=read_size,
            write_size=write_size,
            presented_key=presented,
        )
    except paramiko.SSHException as exc:
        transport.close()
        raise _connection_error(endpoint, "opening the SFTP session", exc) from None
    except BaseException:
        transport.close()
        raise


def _handshake(
    endpoint: Endpoint, preferred: list[str], abort: Abort, *, only: bool = False
) -> paramiko.Transport | None:
    """A transport after the key exchange, asking for the ``preferred`` host key
    algorithms first; with ``only``, for those alone (None if the server has none)."""
    abort.check()
    timeout = endpoint.timeout_seconds
    abort.dialed = True
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except socket.gaierror as exc:
        raise StepFailed(
            f"{endpoint.label}: cannot resolve host {endpoint.host!r} ({exc.strerror or exc})"
        ) from None
    except ConnectionRefusedError:
        raise StepFailed(
            f"{endpoint.label}: connection refused by {endpoint.address} (nothing listens there?)"
        ) from None
    except TimeoutError:
        raise StepFailed(
            f"{endpoint.label}: no connection to {endpoint.address} within {timeout:g} s "
            "(timeout_seconds)"
        ) from None
    except OSError as exc:
        raise StepFailed(
            f"{endpoint.label}: cannot connect to {endpoint.address} ({exc.strerror or exc})"
        ) from None
    abort.track(sock)
    # SFTP is request and answer: Nagle's algorithm would hold small requests back.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_BYTES, default_max_packet_size=MAX_PACKET_BYTES
    )
    abort.track(transport)
    if only:
        transport.set_log_channel(_PROBE_LOG.name)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    options = transport.get_security_options()
    offered = list(options.ciphers)
    options.ciphers = [c for c in CIPHERS if c in offered] + [
        c for c in offered if c not in CIPHERS
    ]
    if preferred:
        algorithms = list(options.key_types)
        first = [a for a in preferred if a in algorithms]
        options.key_types = first if only else first + [a for a in algorithms if a not in first]
    try:
        transport.start_client(timeout=timeout)
    except IncompatiblePeer:
        abort.answered = True
        transport.close()
        abort.check()
        if only:
            return None
        raise StepFailed(
            f"{endpoint.label}: the server supports none of paramiko's algorithms"
        ) from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        abort.check()
        raise _connection_error(endpoint, "negotiating SSH", exc) from None
    abort.answered = True
    return transport


def _verified_transport(
    endpoint: Endpoint, check: HostKeyCheck, abort: Abort
) -> tuple[paramiko.Transport, bytes]:
    """A transport whose server proved it holds a trusted key, and that key's blob.

    When only fingerprints are pinned and the first key presented is not theirs, each
    other key type is asked for alone, on a new connection (a server without that type
    ends the key exchange), until one matches or all were tried.
    """
    preferred = check.preferred_algorithms() if check.verify else []
    untried = [] if check.pins_types else list(KEY_FAMILIES)
    presented: bytes | None = None
    only = False
    while True:
        transport = _handshake(endpoint, preferred, abort, only=only)
        if transport is not None:
            blob = transport.get_remote_server_key().asbytes()
            if check.accepts(blob):
                return transport, blob
            transport.close()
            presented = presented or blob
            algorithms = ALGORITHMS_OF_KEY_TYPE.get(key_type(blob), ())
            untried = (
                []
                if blob in check.revoked
                else [family for family in untried if not set(family) & set(algorithms)]
            )
        if not untried:
            assert presented is not None  # the first handshake returns or raises
            raise StepFailed(_mismatch(endpoint, check, presented))
        preferred, only = list(untried.pop(0)), True


def _mismatch(endpoint: Endpoint, check: HostKeyCheck, blob: bytes) -> str:
    presented = f"{key_type(blob)} key {fingerprint(blob)}"
    if blob in check.revoked:
        reason = f"presented a revoked {presented}"
    elif check.pins_types and key_type(blob) not in key_types(check.keys):
        reason = (
            f"offers no key of the pinned types ({', '.join(key_types(check.keys))}); "
            f"it presented a {presented}"
        )
    else:
        reason = f"presented a {presented}, which is not the one in {check.source}"
    return (
        f"{endpoint.label}: host key verification failed: the server {reason}. "
        "No credentials were sent. If the server's key was changed on purpose, update "
        "host_key (or known_hosts_path) after checking the new key with its operator"
    )


def _authenticate(
    transport: paramiko.Transport,
    endpoint: Endpoint,
    credentials: Credentials,
    key: paramiko.PKey | None,
) -> None:
    user = endpoint.username
    method = "password" if key is None else "public key"
    try:
        if key is not None:
            transport.auth_publickey(user, key)
        else:
            transport.auth_password(user, credentials.password or "")
    except paramiko.BadAuthenticationType as exc:
        allowed = ", ".join(exc.allowed_types) or "nothing"
        raise StepFailed(
            f"{endpoint.label}: the server does not accept {method} authentication "
            f"for {user!r} (it accepts: {allowed})"
        ) from None
    except paramiko.AuthenticationException:
        raise StepFailed(
            f"{endpoint.label}: authentication as {user!r} failed: the server rejected the {method}"
        ) from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise _connection_error(endpoint, "authenticating", exc) from None
    if not transport.is_authenticated():
        raise StepFailed(f"{endpoint.label}: authentication as {user!r} did not complete")


def _request_sizes(sftp: paramiko.SFTPClient) -> tuple[int, int]:
    """Read and write sizes from the server's ``limits@openssh.com`` reply."""
    try:
        kind, message = cast(Any, sftp)._request(CMD_EXTENDED, "limits@openssh.com")
    except (OSError, paramiko.SSHException):
        return DEFAULT_REQUEST_BYTES, DEFAULT_REQUEST_BYTES
    if kind != CMD_EXTENDED_REPLY:
        return DEFAULT_REQUEST_BYTES, DEFAULT_REQUEST_BYTES
    message.get_int64()  # max packet length
    max_read, max_write = message.get_int64(), message.get_int64()

    def size(limit: int) -> int:
        return DEFAULT_REQUEST_BYTES if limit <= 0 else min(max(limit, 4096), MAX_REQUEST_BYTES)

    return size(max_read), size(max_write)


def _connection_error(endpoint: Endpoint, doing: str, exc: BaseException) -> StepFailed:
    """A StepFailed for a failure of the SSH connection itself."""
    timeout = endpoint.timeout_seconds
    text = str(exc).lower()
    if isinstance(exc, TimeoutError) or "timeout" in text or "timed out" in text:
        return StepFailed(
            f"{endpoint.label}: no answer for {timeout:g} s (timeout_seconds) while {doing}"
        )
    if "banner" in text:
        return StepFailed(
            f"{endpoint.label}: {endpoint.address} does not speak SSH (it sent no SSH banner)"
        )
    return StepFailed(f"{endpoint.label}: the connection broke while {doing} ({_cause(exc)})")


def broken_connection(exc: BaseException) -> bool:
    """Whether ``exc`` means the network or the SSH connection failed, rather than the
    server refusing one operation."""
    if isinstance(exc, EOFError | paramiko.SSHException | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in (
        errno.ECONNRESET,
        errno.EPIPE,
        errno.ECONNABORTED,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
        errno.EBADF,
    )
