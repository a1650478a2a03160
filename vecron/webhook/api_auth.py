"""Bearer tokens for ``/api/v1``: who is calling, and whether their role allows it.

A call sends ``Authorization: Bearer vcr_…`` (:mod:`vecron.webhook.tokens`). The token
is looked up by its SHA-256; without a valid one the answer is 401 with
``WWW-Authenticate: Bearer``, and with one whose role lacks the permission, 403.

Lookups are cached in the process for :data:`TOKEN_TTL_SECONDS`, found or not, so a
burst of calls costs one database read a second per token; a revoked token (``vecron
token revoke``) therefore stops working within that second, and a new one starts
working within it. The token itself is never kept, logged or sent back: the cache is
keyed by its hash. ``last_used_at`` is written at most every
:data:`TOUCH_INTERVAL_SECONDS` per token.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime

from starlette.requests import Request

from vecron.backends.database import TokenRecord
from vecron.webhook.api_common import ApiError, Caller, log
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission, Role, hash_token, looks_like_token, permissions_for

TOKEN_TTL_SECONDS = 1.0
"""How long a token lookup (found or not) answers without a new database read."""

TOKEN_CACHE_SIZE = 10_000
"""Token hashes whose lookups are kept."""

TOUCH_INTERVAL_SECONDS = 60.0
"""The least time between two writes of one token's ``last_used_at``."""

REALM = "vecron"
_CHALLENGE = f'Bearer realm="{REALM}"'


def unauthorized(message: str, *, invalid: bool) -> ApiError:
    """A 401 with the challenge of RFC 6750 (``error="invalid_token"`` for a bad one)."""
    challenge = f'{_CHALLENGE}, error="invalid_token"' if invalid else _CHALLENGE
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": challenge})


def forbidden(caller: Caller, permission: Permission) -> ApiError:
    role = caller.role.value if caller.role is not None else "none"
    return ApiError(
        403,
        "forbidden",
        f"token {caller.name!r} (role {role}) does not have the permission {permission.value}",
    )


class TokenAuthenticator:
    """Finds the caller of a request from its bearer token (cached, see the module)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._found: OrderedDict[str, tuple[float, TokenRecord | None]] = OrderedDict()
        self._touched: dict[str, float] = {}

    async def caller(self, request: Request) -> Caller:
        """The caller, or :class:`ApiError` 401 without a valid token."""
        header = request.headers.get("authorization")
        if header is None:
            raise unauthorized("send an API token as Authorization: Bearer vcr_…", invalid=False)
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not looks_like_token(token):
            raise unauthorized(
                "the Authorization header is not a vecron bearer token", invalid=True
            )
        record = await self._lookup(hash_token(token))
        if record is None:
            raise unauthorized("the token is unknown or was revoked", invalid=True)
        try:
            role = Role(record.role)
        except ValueError:
            # A role this version does not know (a newer vecron made it): no permissions.
            log.warning("token %s has an unknown role %r", record.name, record.role)
            raise unauthorized("the token has an unknown role", invalid=True) from None
        await self._touch(record)
        return Caller(
            name=record.name,
            role=role,
            permissions=permissions_for(role),
            token_id=record.token_id,
        )

    async def _lookup(self, token_hash: str) -> TokenRecord | None:
        now = time.monotonic()
        cached = self._found.get(token_hash)
        if cached is not None and now - cached[0] < TOKEN_TTL_SECONDS:
            return cached[1]
        record = await self.state.stores.database.token_by_hash(token_hash)
        self._found[token_hash] = (now, record)
        self._found.move_to_end(token_hash)
        if len(self._found) > TOKEN_CACHE_SIZE:
            self._found.popitem(last=False)
        return record

    async def _touch(self, record: TokenRecord) -> None:
        now = time.monotonic()
        last = self._touched.get(record.token_id)
        if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[record.token_id] = now
        if len(self._touched) > TOKEN_CACHE_SIZE:
            self._touched.clear()
        try:
            await self.state.stores.database.touch_token(record.token_id, datetime.now(UTC))
        except Exception as exc:  # a lost "last used" never fails the call
            log.warning("could not record the use of token %s: %s", record.name, exc)
