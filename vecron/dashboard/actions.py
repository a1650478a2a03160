"""The dashboard's actions go through the API's own handlers.

Triggering, enabling and disabling a job from a page runs exactly the code of
``POST /api/v1/jobs/{name}/runs|enable|disable`` (:mod:`vecron.webhook.api_jobs`) as
the session's caller: the same checks, refusals, messages and log lines, without a
second copy of the rules.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vecron.dashboard.session import Viewer
from vecron.webhook.api_common import Call, error_for
from vecron.webhook.payload import JSON_TYPE
from vecron.webhook.state import ServerState

Handler = Callable[[Call], Awaitable[Response]]
_REPLACED = {b"content-type", b"content-length", b"idempotency-key", b"authorization"}


async def call_api(
    handler: Handler,
    request: Request,
    state: ServerState,
    viewer: Viewer,
    *,
    body: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run an API ``handler`` for ``request`` (its path parameters) as ``viewer``; its
    status and JSON answer (an error's is ``{"error", "message"}``)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() not in _REPLACED]
    headers.append((b"content-type", JSON_TYPE.encode()))
    if idempotency_key:
        headers.append((b"idempotency-key", idempotency_key.encode("ascii", "replace")))
    scope = {**request.scope, "headers": headers}
    raw = b"" if body is None else json.dumps(body).encode()
    call = Call(
        request=Request(scope, request.receive), state=state, caller=viewer.caller, body=raw
    )
    try:
        response = await handler(call)
    except Exception as exc:  # error_for is the API's one mapping of errors
        response = error_for(exc, request)
    answer = json.loads(bytes(response.body)) if response.body else {}
    return response.status_code, answer if isinstance(answer, dict) else {}


def run_body(variables_text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The body of a manual run from the form's optional JSON object of variables."""
    text = variables_text.strip()
    if not text:
        return None, None
    try:
        variables = json.loads(text)
    except ValueError as exc:
        return None, f"the variables are not valid JSON: {exc}"
    if not isinstance(variables, dict):
        return None, 'the variables must be a JSON object, such as {"REGION": "eu"}'
    return {"variables": variables}, None
