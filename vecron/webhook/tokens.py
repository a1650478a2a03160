"""API tokens: making them, hashing them for storage, and what each role may do.

A token is ``vcr_`` followed by 32 random bytes in URL-safe base64 (256 bits). Only
its hash is stored. The hash is one SHA-256, not a slow password hash (bcrypt,
scrypt, Argon2): those exist to make guessing a low-entropy password expensive, and
no number of guesses finds a 256-bit random value, fast hash or slow. A slow hash
would cost every API call milliseconds of CPU for no gain, and would hand a flood of
bad tokens a cheap way to burn the server's CPU. A plain hash also lets the store
look a token up by an indexed equality on its hash.

The prefix lets secret scanners (GitHub's, gitleaks) recognise a leaked token, and
lets :func:`looks_like_token` refuse anything else before a database lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

TOKEN_PREFIX: Final = "vcr_"
TOKEN_BYTES: Final = 32
# token_urlsafe(32) is 43 characters of [A-Za-z0-9_-], without padding.
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + 43
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Permission(StrEnum):
    """What an API call needs; the values are the names the API and docs use."""

    JOB_READ = "job:read"
    JOB_WRITE = "job:write"
    JOB_EXECUTE = "job:execute"
    JOB_DELETE = "job:delete"
    EXECUTION_READ = "execution:read"


class Role(StrEnum):
    """A token's role (``vecron token create NAME --role …``)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_VIEWER = frozenset({Permission.JOB_READ, Permission.EXECUTION_READ})
_OPERATOR = _VIEWER | {Permission.JOB_EXECUTE}

ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = MappingProxyType(
    {
        Role.VIEWER: _VIEWER,
        Role.OPERATOR: _OPERATOR,
        Role.ADMIN: frozenset(Permission),
    }
)


def permissions_for(role: Role | str) -> frozenset[Permission]:
    """The permissions of ``role`` (a :class:`Role` or its name).

    Raises :class:`ValueError` for an unknown role, naming the known ones.
    """
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {role!r} (use one of {known})") from None


def allows(role: Role | str, permission: Permission | str) -> bool:
    """Whether ``role`` has ``permission``; an unknown permission is never allowed."""
    try:
        wanted = Permission(permission)
    except ValueError:
        return False
    return wanted in permissions_for(role)


def new_token() -> str:
    """A new random API token: ``vcr_`` + 43 URL-safe characters. Show it once; store
    only :func:`hash_token` of it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 of ``token`` in hex (64 characters): what the store keeps and
    looks up. See the module docstring for why a fast hash is the right one."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has the shape of a token from :func:`new_token`: a cheap
    check before any lookup (it says nothing about the token being valid)."""
    return (
        len(value) == TOKEN_LENGTH
        and value.startswith(TOKEN_PREFIX)
        and _URLSAFE.issuperset(value[len(TOKEN_PREFIX) :])
    )
