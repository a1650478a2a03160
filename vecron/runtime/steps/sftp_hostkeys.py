"""Which host keys an ``sftp`` step trusts: pinned keys, fingerprints, known_hosts files.

A :class:`HostKeyCheck` is built from the step's config before any connection is made:

- ``host_key`` holds one or more lines, each a ``known_hosts`` line
  (``[host]:port ssh-ed25519 AAAA…``, the host names are not checked: the key is), a bare
  public key (``ssh-ed25519 AAAA…``) or a ``SHA256:`` fingerprint as ``ssh-keygen -l``
  prints it.
- ``known_hosts_path`` names an OpenSSH ``known_hosts`` file; the entries whose host
  patterns match the host (``host`` on port 22, ``[host]:port`` elsewhere; hashed names,
  ``*``/``?`` wildcards and ``!`` negations as in OpenSSH) are trusted, and ``@revoked``
  keys are refused even when pinned. ``@cert-authority`` lines are ignored (host
  certificates are not supported).
- With neither, the worker's own ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``
  are read the same way, as OpenSSH does; a host none of them knows is refused.

The check runs on the key the server proves it holds during the key exchange, before
authentication: a mismatch ends the connection before any credential is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vecron.errors import StepFailed

SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
#: The host key algorithms (as negotiated) that present a key of each key type.
ALGORITHMS_OF_KEY_TYPE = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}
_MAX_KNOWN_HOSTS_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HostKeyCheck:
    """The keys and fingerprints a host may present; ``verify`` False accepts any key.

    ``keys`` are public key blobs (the SSH wire format, key type first), ``fingerprints``
    SHA-256 digests in unpadded base64, ``revoked`` blobs that are refused whatever else
    says. ``source`` names where the trusted keys came from, for messages.
    """

    verify: bool
    keys: frozenset[bytes] = frozenset()
    fingerprints: frozenset[str] = frozenset()
    revoked: frozenset[bytes] = frozenset()
    source: str = "host_key"

    def accepts(self, blob: bytes) -> bool:
        """Whether a server that proved it holds the key ``blob`` is the expected one."""
        if blob in self.revoked:
            return False
        if not self.verify:
            return True
        return blob in self.keys or fingerprint_digest(blob) in self.fingerprints

    def preferred_algorithms(self) -> list[str]:
        """The host key algorithms to ask for first, so that the server presents a key
        of a pinned type when it has several."""
        algorithms: list[str] = []
        for blob in sorted(self.keys):
            for algorithm in ALGORITHMS_OF_KEY_TYPE.get(key_type(blob), ()):
                if algorithm not in algorithms:
                    algorithms.append(algorithm)
        return algorithms

    @property
    def pins_types(self) -> bool:
        """True when only whole keys are trusted, so the key types are known up front;
        a fingerprint may belong to any of the server's keys."""
        return not self.fingerprints


def host_key_check(
    *,
    host: str,
    port: int,
    host_key: str | None,
    known_hosts_path: str | None,
    verify: bool,
) -> HostKeyCheck:
    """The check for one connection. Raises StepFailed for a malformed ``host_key``, an
    unreadable ``known_hosts_path`` or a host with no trusted key at all."""
    if not verify:
        return HostKeyCheck(verify=False, source="nothing (verify_host_key: false)")
    keys: set[bytes] = set()
    fingerprints: set[str] = set()
    revoked: set[bytes] = set()
    sources: list[str] = []
    if host_key is not None:
        parsed_keys, parsed_fingerprints = parse_host_key(host_key)
        keys.update(parsed_keys)
        fingerprints.update(parsed_fingerprints)
        sources.append("host_key")
    files = [known_hosts_path] if known_hosts_path is not None else []
    if host_key is None and known_hosts_path is None:
        files = [path for path in SYSTEM_KNOWN_HOSTS if Path(path).expanduser().is_file()]
    for path in files:
        found, found_revoked = known_hosts_keys(path, host=host, port=port)
        keys.update(found)
        revoked.update(found_revoked)
        sources.append(path)
    if not keys and not fingerprints:
        where = " or ".join(sources) if sources else ", ".join(SYSTEM_KNOWN_HOSTS)
        raise StepFailed(
            f"no trusted host key for {host_name(host, port)} in {where}: set host_key to the "
            f"server's public key or SHA256 fingerprint (ask its operator, or run "
            f"ssh-keyscan -p {port} {host} | ssh-keygen -lf -), or known_hosts_path"
        )
    return HostKeyCheck(
        verify=True,
        keys=frozenset(keys),
        fingerprints=frozenset(fingerprints),
        revoked=frozenset(revoked),
        source=" and ".join(sources),
    )


def parse_host_key(text: str) -> tuple[set[bytes], set[str]]:
    """The key blobs and fingerprints in ``host_key`` (see the module docstring)."""
    keys: set[bytes] = set()
    fingerprints: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("SHA256:"):
            digest = line.removeprefix("SHA256:").strip().rstrip("=")
            if len(digest) != 43 or not _is_base64(digest + "="):
                raise StepFailed(
                    f"host_key line {number}: {line[:60]!r} is not a SHA256 fingerprint "
                    "(43 base64 characters after SHA256:, as ssh-keygen -l prints)"
                )
            fingerprints.add(digest)
            continue
        if line.startswith("@"):
            raise StepFailed(
                f"host_key line {number}: markers such as {line.split()[0]} are not "
                "supported here (use known_hosts_path)"
            )
        fields = line.split()
        start = 0 if fields[0] in ALGORITHMS_OF_KEY_TYPE else 1
        if len(fields) < start + 2 or fields[start] not in ALGORITHMS_OF_KEY_TYPE:
            raise StepFailed(
                f"host_key line {number}: expected a known_hosts line, a public key "
                f"('ssh-ed25519 AAAA…') or a SHA256: fingerprint, got {line[:60]!r}"
            )
        blob = _key_blob(fields[start], fields[start + 1])
        if blob is None:
            raise StepFailed(
                f"host_key line {number}: the {fields[start]} key is not valid base64 "
                "of a key of that type"
            )
        keys.add(blob)
    if not keys and not fingerprints:
        raise StepFailed("host_key holds no key and no fingerprint")
    return keys, fingerprints


def known_hosts_keys(path: str, *, host: str, port: int) -> tuple[set[bytes], set[bytes]]:
    """The keys a known_hosts file trusts for ``host``, and those it revokes."""
    file = Path(path).expanduser()
    try:
        if file.stat().st_size > _MAX_KNOWN_HOSTS_BYTES:
            raise StepFailed(f"known_hosts file {path} is larger than 16 MiB")
        text = file.read_text("utf-8", "replace")
    except FileNotFoundError:
        raise StepFailed(f"known_hosts file {path} does not exist") from None
    except OSError as exc:
        raise StepFailed(f"cannot read known_hosts file {path} ({exc.strerror or exc})") from None
    name = host_name(host, port)
    trusted: set[bytes] = set()
    revoked: set[bytes] = set()
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if marker not in (None, "@revoked") or len(fields) < 3:
            continue
        if marker is None and not host_matches(fields[0], name):
            continue
        blob = _key_blob(fields[1], fields[2])
        if blob is None:
            continue
        (revoked if marker == "@revoked" else trusted).add(blob)
    return trusted, revoked


def host_name(host: str, port: int) -> str:
    """How known_hosts names a host: ``host`` on port 22, ``[host]:port`` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"


def host_matches(patterns: str, name: str) -> bool:
    """Whether a known_hosts host field (comma-separated patterns or one hashed name)
    names ``name``."""
    if patterns.startswith("|1|"):
        return _hashed_matches(patterns, name)
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if _wildcard(pattern.removeprefix("!")).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def fingerprint(blob: bytes) -> str:
    """``SHA256:…`` of a public key blob, as ``ssh-keygen -l`` prints it."""
    return f"SHA256:{fingerprint_digest(blob)}"


def fingerprint_digest(blob: bytes) -> str:
    return base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def key_type(blob: bytes) -> str:
    """The key type named at the start of a public key blob (``ssh-ed25519``)."""
    if len(blob) < 4:
        return ""
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length].decode("ascii", "replace")


def key_types(blobs: Iterable[bytes]) -> list[str]:
    return sorted({key_type(blob) for blob in blobs})


def _wildcard(pattern: str) -> re.Pattern[str]:
    # Only * and ? are special in known_hosts patterns: "[host]:port" is literal.
    parts = ("." if char == "?" else ".*" if char == "*" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.IGNORECASE)


def _key_blob(kind: str, text: str) -> bytes | None:
    if kind not in ALGORITHMS_OF_KEY_TYPE or not _is_base64(text):
        return None
    blob = base64.b64decode(text)
    return blob if key_type(blob) == kind else None


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _hashed_matches(field: str, name: str) -> bool:
    # |1|base64(salt)|base64(HMAC-SHA1(salt, name)), as ssh-keygen -H writes.
    parts = field.split("|")
    if len(parts) != 4:
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
        expected = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return False
    actual = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)
