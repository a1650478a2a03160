"""The private key of an ``sftp`` step's ``ssh_key`` auth: read, decrypted, checked.

The key comes as text (usually ``${secret:…}``; one line with ``\\n`` escapes, as some
secret stores keep it, works too) or from a file on the worker; OpenSSH and PEM
formats, ed25519, ECDSA or RSA, encrypted or not. cryptography reads it (so that a
wrong passphrase is told apart from a file that is no key), then paramiko gets the
decrypted key. No message ever quotes the key or the passphrase.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from vecron.errors import StepFailed

_MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A password, or a private key (its text, or a file) with an optional passphrase."""

    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    private_key_path: str | None = None
    passphrase: str | None = field(default=None, repr=False)


def load_private_key(credentials: Credentials) -> paramiko.PKey | None:
    """The private key of ``credentials`` (None for a password), read and decrypted;
    StepFailed says what is wrong with it without ever quoting it."""
    if credentials.private_key is not None:
        text = credentials.private_key.strip()
        if "\n" not in text and "\\n" in text:  # a key pasted as one line with escapes
            text = text.replace("\\n", "\n")
        data = text.replace("\r\n", "\n").encode("utf-8") + b"\n"
        what = "private_key"
    elif credentials.private_key_path is not None:
        path = Path(credentials.private_key_path).expanduser()
        what = f"private_key_path {credentials.private_key_path}"
        try:
            if path.stat().st_size > _MAX_KEY_BYTES:
                raise StepFailed(f"{what} is larger than 64 KiB: not a private key")
            data = path.read_bytes()
        except FileNotFoundError:
            raise StepFailed(f"{what} does not exist on the worker") from None
        except OSError as exc:
            raise StepFailed(f"cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    else:
        return None
    return _parse_private_key(data, credentials.passphrase, what)


def _parse_private_key(data: bytes, passphrase: str | None, what: str) -> paramiko.PKey:
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        try:
            loaded = _load_key(data, password)
        except TypeError as exc:
            if password is None or "not encrypted" not in str(exc):
                raise StepFailed(f"{what} is encrypted: set auth.passphrase") from None
            loaded = _load_key(data, None)  # a passphrase for a plain key: ignored, as ssh does
    except ValueError as exc:
        if password is not None and _encrypted(data):
            raise StepFailed(f"{what}: wrong passphrase (cannot decrypt the key)") from None
        raise StepFailed(
            f"{what} is not a private key in OpenSSH or PEM format ({_cause(exc)})"
        ) from None
    except StepFailed:
        raise
    except Exception as exc:  # an unsupported cipher or KDF
        raise StepFailed(f"{what} cannot be read ({_cause(exc)})") from None
    kind: type[paramiko.PKey]
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        kind = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        kind = paramiko.ECDSAKey
    elif isinstance(loaded, rsa.RSAPrivateKey):
        kind = paramiko.RSAKey
    else:
        raise StepFailed(f"{what}: unsupported key type (use ed25519, ECDSA or RSA)")
    plain = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return kind.from_private_key(io.StringIO(plain.decode("ascii")))


def _load_key(data: bytes, password: bytes | None) -> Any:
    try:
        return serialization.load_ssh_private_key(data, password)
    except ValueError:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            raise
        return serialization.load_pem_private_key(data, password)


def _encrypted(data: bytes) -> bool:
    try:
        _load_key(data, None)
    except TypeError:  # "Key is password-protected, but password was not provided."
        return True
    except Exception:
        return False
    return False


def _cause(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:200] or type(exc).__name__
