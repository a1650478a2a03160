"""``POST /webhooks/{webhook_id}``: signed deliveries that start runs.

A delivery is checked in this order, and the first failed check answers, with a JSON
error body and nothing queued:

====  ===================================================================================
404   the id is unknown (or was rotated away)
413   the body is over the limit (``Content-Length`` is trusted to refuse early, and the
      body is never read past the limit)
401   the signature is missing, wrong or stale (the schemes the job accepts:
      ``triggers.webhook.schemes``)
403   the job is disabled or its webhook trigger is off
415   the content type is neither JSON, form nor text (400 for a malformed body)
429   over the job's ``rate_limit`` (requests a minute, sliding window), with
      ``Retry-After``
409   a run is in flight and the job does not allow concurrent runs
====  ===================================================================================

The signature comes before everything a sender could learn from (403, 429, 409), so an
unsigned caller learns nothing but that the id exists; a flood of bad signatures never
uses up the job's rate limit.

Accepted: ``202 {"execution_id": …}``. The payload, query parameters, the headers
named in ``triggers.webhook.headers`` and ``received_at`` go into the run's trigger
data (``webhook.*`` in the Job Context). An ``Idempotency-Key`` header makes a
redelivery answer with the first delivery's execution (and ``Idempotent-Replayed:
true``) instead of starting another run.

Job records are cached by webhook id for :data:`JOB_TTL_SECONDS` so that refusals cost
no database read; an accepted delivery always reads the job afresh before it records
the run, so a rotation or a disable refuses the very next valid delivery.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vecron.backends.database import JobRecord, TriggerSource
from vecron.errors import (
    BackendUnavailable,
    JobNotFound,
    MalformedPayload,
    PayloadTooLarge,
    SignatureRefused,
    TriggerRefused,
    UnsupportedContentType,
)
from vecron.runtime.trigger import create_execution
from vecron.runtime.values import MASK, SECRET_ENV_PREFIX
from vecron.spec.models import WebhookTrigger
from vecron.spec.sensitive import sensitive_name
from vecron.webhook.payload import parse_payload, read_body, select_headers
from vecron.webhook.responses import error_response, json_response
from vecron.webhook.signing import verify
from vecron.webhook.state import ServerState

log = logging.getLogger("vecron.webhook")

JOB_TTL_SECONDS = 1.0
"""How long a job record read for a webhook id answers refusals without a new read."""

JOB_CACHE_SIZE = 10_000
"""Webhook ids whose job records are kept."""

MAX_IDEMPOTENCY_KEY = 200
"""The longest ``Idempotency-Key`` accepted (characters, printable ASCII)."""

RATE_WINDOW_SECONDS = 60.0

_SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_SIGNATURE_HEADERS = frozenset({"x-vecron-signature", "x-vecron-timestamp", "x-hub-signature-256"})
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class _Refusal(Exception):
    status: int
    code: str
    message: str
    retry_after: float | None = None

    def response(self) -> Response:
        headers = None
        if self.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(self.retry_after)))}
        return error_response(self.status, self.code, self.message, headers)


class _Receiver:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._jobs: OrderedDict[str, tuple[float, JobRecord]] = OrderedDict()

    async def handle(self, request: Request) -> Response:
        webhook_id = request.path_params["webhook_id"]
        try:
            return await self._handle(request, webhook_id)
        except _Refusal as refusal:
            if refusal.status >= 500:
                log.error("webhook %s: %s", webhook_id[:6], refusal.message)
            return refusal.response()
        except BackendUnavailable as exc:
            # The database, the queue or the shared rate limits (Redis) are down: the
            # sender retries later; nothing was accepted unchecked.
            log.error("webhook %s: %s", webhook_id[:6], exc)
            return error_response(
                503,
                "backend_unavailable",
                "a backend is unavailable; retry later",
                {"Retry-After": "5"},
            )

    async def _handle(self, request: Request, webhook_id: str) -> Response:
        job = await self._job(webhook_id, fresh=False)
        try:
            body = await read_body(request, self.state.body_limit)
        except PayloadTooLarge:
            raise _Refusal(
                413, "payload_too_large", f"the body is over {self.state.body_limit} bytes"
            ) from None
        config = await self._check(job, request, body)
        try:
            payload = parse_payload(body, request.headers.get("content-type"))
        except UnsupportedContentType as exc:
            raise _Refusal(415, "unsupported_content_type", str(exc)) from None
        except MalformedPayload as exc:
            raise _Refusal(400, "malformed_payload", str(exc)) from None
        idempotency_key = _idempotency_key(request)
        if job.webhook_rate_limit is not None:
            decision = await self.state.rate_limiter.hit(
                f"webhook:{job.job_id}", job.webhook_rate_limit, RATE_WINDOW_SECONDS
            )
            if not decision.allowed:
                raise _Refusal(
                    429,
                    "rate_limited",
                    f"over the rate limit of {job.webhook_rate_limit} requests a minute",
                    retry_after=decision.retry_after,
                )
        # Refusals above may use a record up to JOB_TTL_SECONDS old; a run is only
        # recorded against the job as it is now.
        fresh = await self._job(webhook_id, fresh=True)
        if _checked_fields(fresh) != _checked_fields(job):
            config = await self._check(fresh, request, body)
        trigger_data = {
            "payload": payload,
            "query_params": dict(request.query_params),
            "headers": _copied_headers(request, config),
            "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        try:
            record = await create_execution(
                self.state.stores.database,
                fresh,
                trigger_source=TriggerSource.WEBHOOK,
                trigger_data=trigger_data,
                idempotency_key=None if idempotency_key is None else f"webhook:{idempotency_key}",
            )
        except TriggerRefused as exc:
            status = 409 if exc.reason == "concurrent" else 403
            code = "run_in_flight" if exc.reason == "concurrent" else "refused"
            raise _Refusal(status, code, str(exc)) from None
        # With a key already used, the store returns the first delivery's execution.
        replayed = record.trigger_data.get("received_at") != trigger_data["received_at"]
        if not replayed:
            await self.state.enqueue(record)
        log.info(
            "webhook delivery for %s: execution %s%s",
            fresh.name,
            record.execution_id,
            " (replayed)" if replayed else "",
            extra={"job_id": fresh.job_id, "execution_id": record.execution_id},
        )
        return json_response(
            {"execution_id": record.execution_id, "status": str(record.status)},
            202,
            {"Idempotent-Replayed": "true"} if replayed else None,
        )

    async def _check(self, job: JobRecord, request: Request, body: bytes) -> WebhookTrigger:
        """Signature, then the job's state; the job's webhook configuration."""
        definition = await self.state.definition(job)
        config = None if definition is None else definition.triggers.webhook
        if config is None:
            # Synced without a webhook trigger since the id was given, or being synced.
            raise _Refusal(404, "not_found", "no webhook has this id")
        secret = await self._secret(job, config)
        if secret is None:
            raise _Refusal(401, "bad_signature", "the webhook has no secret")
        try:
            verify(request.headers, body, secret, config.schemes, now=self.state.clock())
        except SignatureRefused as exc:
            raise _Refusal(401, "bad_signature", exc.reason) from None
        if not job.enabled:
            reason = f" ({job.disabled_reason})" if job.disabled_reason else ""
            raise _Refusal(403, "job_disabled", f"job {job.name!r} is disabled{reason}")
        if not job.webhook_enabled:
            raise _Refusal(403, "webhook_off", f"job {job.name!r} has its webhook trigger off")
        return config

    async def _secret(self, job: JobRecord, config: WebhookTrigger) -> str | None:
        if job.webhook_secret:
            return job.webhook_secret
        reference = _SECRET_REFERENCE.fullmatch(config.secret or "")
        if reference is None:
            return None
        name = reference.group(1)
        value = (await self.state.stored_secrets()).get(name)
        if value is None:
            value = self.state.environ.get(SECRET_ENV_PREFIX + name)
        if value is None:
            log.error(
                "job %s: webhook secret %s is neither a secret variable nor in %s%s",
                job.name,
                name,
                SECRET_ENV_PREFIX,
                name,
            )
        return value or None

    async def _job(self, webhook_id: str, *, fresh: bool) -> JobRecord:
        now = time.monotonic()
        cached = self._jobs.get(webhook_id)
        if cached is not None and not fresh and now - cached[0] < JOB_TTL_SECONDS:
            return cached[1]
        try:
            job = await self.state.stores.database.get_job_by_webhook(webhook_id)
        except JobNotFound:
            self._jobs.pop(webhook_id, None)
            raise _Refusal(404, "not_found", "no webhook has this id") from None
        self._jobs[webhook_id] = (now, job)
        self._jobs.move_to_end(webhook_id)
        if len(self._jobs) > JOB_CACHE_SIZE:
            self._jobs.popitem(last=False)
        return job


def _checked_fields(job: JobRecord) -> tuple[Any, ...]:
    return (
        job.webhook_id,
        job.webhook_secret,
        job.webhook_enabled,
        job.enabled,
        job.content_hash,
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not _PRINTABLE.fullmatch(key):
        raise _Refusal(
            400,
            "bad_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        )
    return key


def _copied_headers(request: Request, config: WebhookTrigger) -> dict[str, str]:
    """The configured headers; signatures never, credentials masked."""
    wanted = [name for name in config.headers if name.lower() not in _SIGNATURE_HEADERS]
    copied = select_headers(request.headers, wanted)
    return {
        name: MASK if name in _CREDENTIAL_HEADERS or sensitive_name(name) else value
        for name, value in copied.items()
    }


def routes(state: ServerState) -> list[BaseRoute]:
    """``POST /webhooks/{webhook_id}``."""
    receiver = _Receiver(state)
    return [Route("/webhooks/{webhook_id}", receiver.handle, methods=["POST"])]
