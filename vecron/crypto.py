"""Encryption of small secrets at rest (variables marked secret, webhook secrets).

:class:`SecretBox` wraps Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) from the
``cryptography`` package. Its key comes from ``VECRON_SECRET_KEY`` (any string; a Fernet
key is derived from it with HKDF-SHA256) or, when that is unset, from a key generated
once and kept in ``<home>/secret.key`` (mode 0600), which is what the embedded mode uses.

Ciphertexts are ASCII text (URL-safe base64), so they fit a text column.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vecron.errors import ConfigurationError

if TYPE_CHECKING:
    from vecron.settings import Settings

KEY_FILE_NAME = "secret.key"

# Changing either constant changes every derived key: existing secrets would no longer
# decrypt. They are versioned so that a future scheme can live beside this one.
_HKDF_SALT = b"vecron/secret-box/v1"
_HKDF_INFO = b"vecron fernet key from VECRON_SECRET_KEY"

WRONG_KEY_MESSAGE = "VECRON_SECRET_KEY does not match the key these secrets were encrypted with"


class SecretBox:
    """Encrypts and decrypts short strings with one Fernet key.

    Build it with :meth:`from_settings` at the entry point, or with :meth:`from_secret`
    / :meth:`generate` in tests. Decrypting a value that another key encrypted raises
    :class:`~vecron.errors.ConfigurationError` and never shows the value.
    """

    __slots__ = ("_fernet",)

    def __init__(self, fernet_key: bytes | str) -> None:
        try:
            self._fernet = Fernet(fernet_key)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "a secret key must be 32 url-safe base64-encoded bytes (a Fernet key)"
            ) from exc

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @classmethod
    def from_secret(cls, secret: str) -> SecretBox:
        """A box whose key is derived from ``secret`` (any non-empty string) with HKDF-SHA256."""
        if not secret:
            raise ConfigurationError("VECRON_SECRET_KEY is set but empty")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
        return cls(base64.urlsafe_b64encode(hkdf.derive(secret.encode("utf-8"))))

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a fresh random key (tests, throwaway stores)."""
        return cls(Fernet.generate_key())

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        """A box with the key kept in ``path``, generating it first when the file is missing.

        The file is created atomically with mode 0600: when two processes start at once,
        both end up with the key of whichever wrote first, and no process ever reads a
        partly written file.
        """
        if not path.exists():
            _create_key_file(path)
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the secret key file {path}: {exc}") from exc
        try:
            return cls(key)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"the secret key file {path} does not hold a valid key; restore it, "
                "or set VECRON_SECRET_KEY to the key the secrets were encrypted with"
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """``settings.secret_key`` when set, else the key file under ``settings.home``."""
        if settings.secret_key is not None:
            return cls.from_secret(settings.secret_key)
        return cls.from_key_file(settings.home / KEY_FILE_NAME)

    def encrypt(self, plaintext: str) -> str:
        """The ciphertext of ``plaintext`` as ASCII text; a new random IV each call."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext of a value :meth:`encrypt` made with the same key."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            # ``from None``: the token (and anything derived from it) stays out of tracebacks.
            raise ConfigurationError(WRONG_KEY_MESSAGE) from None


def _create_key_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            # A hard link never replaces an existing file: the first writer wins.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the secret key file {path}: {exc}") from exc
