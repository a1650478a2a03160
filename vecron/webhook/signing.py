"""Webhook signatures: HMAC-SHA256 with the job's secret, in two schemes.

- ``vecron``: ``X-Vecron-Signature: sha256=<hex>`` over ``f"{timestamp}.".encode() +
  body``, with ``X-Vecron-Timestamp`` (Unix seconds, an integer). A timestamp more than
  ``tolerance_seconds`` (300) from now is refused, so a captured request cannot be
  replayed later.
- ``github``: ``X-Hub-Signature-256: sha256=<hex>`` over the raw body, exactly as
  GitHub documents it ("Validating webhook deliveries"). It has no timestamp, so it
  does not protect against replay; a job opts into it.

:func:`verify` sits on the path that refuses floods, so it does the cheap checks
(headers present and well-formed, timestamp in range) before any HMAC, and computes
at most one HMAC per scheme. Signatures are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, get_args

from starlette.datastructures import Headers

from vecron.errors import SignatureRefused

Scheme = Literal["vecron", "github"]
SCHEMES: Final[tuple[Scheme, ...]] = get_args(Scheme)

SIGNATURE_HEADER: Final = "X-Vecron-Signature"
TIMESTAMP_HEADER: Final = "X-Vecron-Timestamp"
GITHUB_SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
DEFAULT_TOLERANCE_SECONDS: Final = 300.0

_PREFIX: Final = "sha256="
_HEX_LENGTH: Final = 64  # a SHA-256 digest in hex
_MAX_TIMESTAMP_DIGITS: Final = 12  # Unix seconds until the year 33658

# Refusal reasons: short, fixed strings (the caller may send them back).
MISSING_SIGNATURE: Final = "missing signature"
MALFORMED_SIGNATURE: Final = "malformed signature"
MISSING_TIMESTAMP: Final = "missing timestamp"
MALFORMED_TIMESTAMP: Final = "malformed timestamp"
STALE_TIMESTAMP: Final = "stale timestamp"
FUTURE_TIMESTAMP: Final = "timestamp in the future"
BAD_SIGNATURE: Final = "bad signature"
NO_SCHEME: Final = "no signature scheme is enabled"
NO_SECRET: Final = "the webhook has no secret"

_SIGNATURE_KEY: Final = SIGNATURE_HEADER.lower()
_TIMESTAMP_KEY: Final = TIMESTAMP_HEADER.lower()
_GITHUB_SIGNATURE_KEY: Final = GITHUB_SIGNATURE_HEADER.lower()


def sign(
    secret: str | bytes,
    body: bytes,
    *,
    scheme: Scheme = "vecron",
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers that sign ``body`` in ``scheme``.

    ``timestamp`` (Unix seconds) is used by the ``vecron`` scheme only; it defaults to
    now. Raises :class:`ValueError` for an empty secret, which anyone could sign with.
    """
    key = _key(secret)
    if not key:
        raise ValueError("cannot sign with an empty secret")
    if scheme == "github":
        return {GITHUB_SIGNATURE_HEADER: _PREFIX + hmac.digest(key, body, "sha256").hex()}
    if scheme != "vecron":
        raise ValueError(f"unknown signature scheme {scheme!r} (use one of {SCHEMES})")
    moment = int(time.time()) if timestamp is None else timestamp
    if moment < 0:
        raise ValueError(f"timestamp {moment} is negative")
    signed = f"{moment}.".encode() + body
    return {
        TIMESTAMP_HEADER: str(moment),
        SIGNATURE_HEADER: _PREFIX + hmac.digest(key, signed, "sha256").hex(),
    }


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str | bytes,
    schemes: Sequence[Scheme],
    now: float | None = None,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> Scheme:
    """The scheme whose signature of ``body`` in ``headers`` is valid.

    ``headers`` are matched case-insensitively (a Starlette ``Headers`` or any
    mapping). ``now`` is Unix seconds (default: the wall clock). Schemes are tried in
    the order given, and only those whose signature header is present; when several
    are present and none is valid, the reason is the first one's.

    Raises :class:`~vecron.errors.SignatureRefused` with a short reason that never
    holds the secret or the expected signature; also when ``secret`` is empty (anyone
    can compute an HMAC with an empty key) or ``schemes`` is.
    """
    if not secret:
        raise SignatureRefused(NO_SECRET)
    if not schemes:
        raise SignatureRefused(NO_SCHEME)
    get = headers.get if isinstance(headers, Headers) else _lowered(headers).get
    first_reason: str | None = None
    for scheme in schemes:
        if scheme == "vecron":
            reason = _vecron_reason(get, body, secret, now, tolerance_seconds)
        elif scheme == "github":
            reason = _github_reason(get, body, secret)
        else:
            raise ValueError(f"unknown signature scheme {scheme!r} (use one of {SCHEMES})")
        if reason is None:
            return scheme
        if reason != MISSING_SIGNATURE and first_reason is None:
            first_reason = reason
    raise SignatureRefused(first_reason or MISSING_SIGNATURE)


def _vecron_reason(
    get: Callable[[str], str | None],
    body: bytes,
    secret: str | bytes,
    now: float | None,
    tolerance_seconds: float,
) -> str | None:
    """Why the ``vecron`` signature is refused, or None when it is valid."""
    given = get(_SIGNATURE_KEY)
    if given is None:
        return MISSING_SIGNATURE
    stamp = get(_TIMESTAMP_KEY)
    if stamp is None:
        return MISSING_TIMESTAMP
    # Only ASCII digits: int() would also take signs, spaces, underscores and other
    # scripts' digits, and the signed text is the header exactly as sent.
    if not (0 < len(stamp) <= _MAX_TIMESTAMP_DIGITS and stamp.isascii() and stamp.isdigit()):
        return MALFORMED_TIMESTAMP
    age = (time.time() if now is None else now) - int(stamp)
    if age > tolerance_seconds:
        return STALE_TIMESTAMP
    if age < -tolerance_seconds:
        return FUTURE_TIMESTAMP
    digest = _parse_signature(given)
    if digest is None:
        return MALFORMED_SIGNATURE
    expected = hmac.digest(_key(secret), f"{stamp}.".encode() + body, "sha256")
    return None if hmac.compare_digest(expected, digest) else BAD_SIGNATURE


def _github_reason(
    get: Callable[[str], str | None], body: bytes, secret: str | bytes
) -> str | None:
    """Why the ``github`` signature is refused, or None when it is valid."""
    given = get(_GITHUB_SIGNATURE_KEY)
    if given is None:
        return MISSING_SIGNATURE
    digest = _parse_signature(given)
    if digest is None:
        return MALFORMED_SIGNATURE
    expected = hmac.digest(_key(secret), body, "sha256")
    return None if hmac.compare_digest(expected, digest) else BAD_SIGNATURE


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _parse_signature(value: str) -> bytes | None:
    """The digest in ``sha256=<64 hex digits>``, or None when it is not that shape."""
    value = value.strip()
    if len(value) != len(_PREFIX) + _HEX_LENGTH or not value.startswith(_PREFIX):
        return None
    try:
        digest = bytes.fromhex(value[len(_PREFIX) :])
    except ValueError:
        return None
    # fromhex skips spaces between bytes: a short digest means the text was not all hex.
    return digest if len(digest) == _HEX_LENGTH // 2 else None
