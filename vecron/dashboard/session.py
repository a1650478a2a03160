"""Who is looking at the dashboard: a login with an API token, kept in a session cookie.

Logging in takes an API token (``vecron token create NAME --role …``). The cookie
keeps the SHA-256 of the token (never the token), a CSRF token and the login time,
encrypted and authenticated with the server's :class:`~vecron.crypto.SecretBox`
(Fernet), so it can be neither read nor forged without ``VECRON_SECRET_KEY`` or the
embedded key file. It is ``HttpOnly``, ``SameSite=Lax``, ``Secure`` over HTTPS, and
lasts :data:`SESSION_SECONDS`. Every request looks the token up again (cached for
:data:`LOOKUP_TTL_SECONDS`), so a revoked token logs its sessions out within a second,
and the token's role decides what the pages offer: the API's roles and permissions
(:mod:`vecron.webhook.tokens`), checked again on every action.

Every ``POST`` but the login carries the session's CSRF token, as the form field
``csrf`` or the header ``X-CSRF-Token`` (htmx sends it).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from vecron.backends.database import TokenRecord
from vecron.errors import ConfigurationError
from vecron.webhook.api_common import Caller
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission, Role, hash_token, looks_like_token, permissions_for

log = logging.getLogger("vecron.dashboard")

COOKIE = "vecron_session"
SESSION_SECONDS = 12 * 3600
"""How long a login lasts (seconds)."""
LOOKUP_TTL_SECONDS = 1.0
"""How long a token lookup answers without a new database read."""
FORM_LIMIT = 2 * 1024 * 1024
"""The largest form body read (bytes): the builder's import takes a whole job."""


class NotLoggedIn(Exception):
    """No valid session: the page redirects to the login."""


class Forbidden(Exception):
    """The session's role lacks a permission, or a POST lacks its CSRF token."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Viewer:
    """The person behind a session: the API caller of their token, and its CSRF token."""

    caller: Caller
    csrf: str

    @property
    def name(self) -> str:
        return self.caller.name

    @property
    def role(self) -> str:
        return self.caller.role.value if self.caller.role is not None else "none"

    def can(self, permission: Permission | str) -> bool:
        return self.caller.can(Permission(permission))


class Sessions:
    """Logs people in and out and finds the :class:`Viewer` of a request."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._found: OrderedDict[str, tuple[float, TokenRecord | None]] = OrderedDict()

    async def login(self, token: str, *, secure: bool) -> tuple[Response | None, str | None]:
        """A cookie-setting response header holder for a valid ``token``, else an error."""
        token = token.strip()
        if not looks_like_token(token):
            return None, "that is not a vecron API token (they start with vcr_)"
        record = await self._lookup(hash_token(token))
        if record is None:
            log.warning("dashboard login refused: an unknown or revoked token")
            return None, "the token is unknown or was revoked"
        log.info("dashboard login by token %s", record.name, extra={"token": record.name})
        payload = {"h": record.token_hash, "c": secrets.token_urlsafe(24), "t": int(time.time())}
        value = self.state.stores.secret_box.encrypt(json.dumps(payload))
        response = Response(status_code=303)
        response.set_cookie(
            COOKIE,
            value,
            max_age=SESSION_SECONDS,
            path="/ui",
            httponly=True,
            samesite="lax",
            secure=secure,
        )
        return response, None

    @staticmethod
    def logout(response: Response) -> Response:
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="lax")
        return response

    async def viewer(self, request: Request) -> Viewer:
        """The viewer of ``request``; :class:`NotLoggedIn` without a valid session."""
        value = request.cookies.get(COOKIE)
        if not value:
            raise NotLoggedIn
        try:
            payload = json.loads(self.state.stores.secret_box.decrypt(value))
            token_hash, csrf, issued = str(payload["h"]), str(payload["c"]), int(payload["t"])
        except (ConfigurationError, ValueError, KeyError, TypeError):
            raise NotLoggedIn from None
        if time.time() - issued > SESSION_SECONDS:
            raise NotLoggedIn
        record = await self._lookup(token_hash)
        if record is None:
            raise NotLoggedIn
        try:
            role = Role(record.role)
        except ValueError:
            raise NotLoggedIn from None
        caller = Caller(
            name=record.name,
            role=role,
            permissions=permissions_for(role),
            token_id=record.token_id,
        )
        return Viewer(caller=caller, csrf=csrf)

    async def _lookup(self, token_hash: str) -> TokenRecord | None:
        now = time.monotonic()
        cached = self._found.get(token_hash)
        if cached is not None and now - cached[0] < LOOKUP_TTL_SECONDS:
            return cached[1]
        record = await self.state.stores.database.token_by_hash(token_hash)
        self._found[token_hash] = (now, record)
        self._found.move_to_end(token_hash)
        if len(self._found) > 1000:
            self._found.popitem(last=False)
        return record


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (the last value of a
    repeated name wins). Read by hand: Starlette's parser needs python-multipart."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise Forbidden(f"the form is over {FORM_LIMIT} bytes")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def check_csrf(request: Request, viewer: Viewer, form: dict[str, str]) -> None:
    """:class:`Forbidden` unless the request carries the session's CSRF token."""
    sent = request.headers.get("x-csrf-token") or form.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise Forbidden("the form is stale or came from another site; reload the page")


def require(viewer: Viewer, permission: Permission) -> None:
    """:class:`Forbidden` unless ``viewer``'s role has ``permission``."""
    if not viewer.can(permission):
        raise Forbidden(
            f"token {viewer.name!r} (role {viewer.role}) does not have the permission "
            f"{permission.value}"
        )
