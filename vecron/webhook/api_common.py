"""What the ``/api/v1`` handlers share: the call, its refusals, and the error mapping.

Every refusal is an :class:`ApiError`, and every exception a handler lets out becomes
a response in one place, :func:`error_for`: vecron's own errors by their kind, anything
else a 500 whose details stay in the server log.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vecron.errors import (
    BackendUnavailable,
    ExecutionNotFound,
    JobNotFound,
    MalformedPayload,
    PayloadTooLarge,
    TriggerRefused,
    UnsupportedContentType,
)
from vecron.webhook.payload import JSON_TYPE, parse_payload, read_body
from vecron.webhook.responses import error_response
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission, Role

log = logging.getLogger("vecron.api")

MAX_IDEMPOTENCY_KEY = 200
"""The longest ``Idempotency-Key`` accepted (characters, printable ASCII)."""

_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """A refusal: its status, a stable code and a message for a person."""

    status: int
    code: str
    message: str
    headers: dict[str, str] | None = None

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who is calling: a token's name and role, or a signed Git host (``/sync`` only)."""

    name: str
    role: Role | None
    permissions: frozenset[Permission]
    token_id: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


@dataclass(eq=False, kw_only=True)
class Call:
    """One authenticated request, as the handlers see it."""

    request: Request
    state: ServerState
    caller: Caller
    body: bytes | None = field(default=None, repr=False)

    def param(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    async def read_body(self) -> bytes:
        if self.body is None:
            try:
                self.body = await read_body(self.request, self.state.body_limit)
            except PayloadTooLarge:
                raise ApiError(
                    413, "payload_too_large", f"the body is over {self.state.body_limit} bytes"
                ) from None
        return self.body

    async def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object; None when the body is empty."""
        body = await self.read_body()
        if not body.strip():
            return None
        content_type = self.request.headers.get("content-type")
        media_type = (content_type or "").partition(";")[0].strip().lower()
        if media_type != JSON_TYPE:
            raise ApiError(
                415,
                "unsupported_content_type",
                f"send the body as {JSON_TYPE} (got {content_type or 'no Content-Type'})",
            )
        try:
            value = parse_payload(body, content_type)
        except (MalformedPayload, UnsupportedContentType) as exc:
            raise ApiError(400, "malformed_body", str(exc)) from None
        if not isinstance(value, dict):
            raise ApiError(400, "malformed_body", "the body must be a JSON object")
        return value

    def idempotency_key(self) -> str | None:
        key = self.request.headers.get("idempotency-key")
        if key is None:
            return None
        if not key or len(key) > MAX_IDEMPOTENCY_KEY or not _PRINTABLE.fullmatch(key):
            raise ApiError(
                400,
                "bad_idempotency_key",
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            )
        return key


def iso(moment: datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC with a ``Z`` (as the Job Context writes them)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    text = iso(datetime.now(UTC))
    assert text is not None
    return text


_TRIGGER_REFUSALS = {
    "disabled": (403, "job_disabled"),
    "trigger_off": (403, "manual_off"),
    "syncing": (409, "syncing"),
    "concurrent": (409, "run_in_flight"),
    "not_retryable": (409, "not_retryable"),
    "job_gone": (404, "job_not_found"),
}


def error_for(exc: Exception, request: Request) -> Response:
    """The response for an exception a handler let out (the one mapping of the API)."""
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, JobNotFound):
        return error_response(404, "job_not_found", f"no job named {exc.job!r}")
    if isinstance(exc, ExecutionNotFound):
        return error_response(404, "execution_not_found", f"no execution {exc.execution_id!r}")
    if isinstance(exc, TriggerRefused):
        status, code = _TRIGGER_REFUSALS.get(exc.reason, (409, "refused"))
        return error_response(status, code, str(exc))
    if isinstance(exc, BackendUnavailable):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "backend_unavailable", "a backend is unavailable; the server log says which"
        )
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the server failed; the server log says why")
