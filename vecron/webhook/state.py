"""What the routes of the HTTP server share: the stores, the queue, and small caches.

One :class:`ServerState` is made per app by :func:`vecron.webhook.app.create_app`; the
receiver (``/webhooks``) and the API (``/api/v1``) read it, never module globals.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vecron import paths
from vecron.backends.database import ExecutionRecord, JobRecord
from vecron.backends.queue import Queue
from vecron.backends.ratelimit import RateLimiter
from vecron.errors import ObjectNotFound
from vecron.runtime.metrics import Metrics
from vecron.runtime.worker import enqueue
from vecron.spec.models import Job
from vecron.stores import Stores

DEFAULT_BODY_LIMIT = 1024 * 1024
"""The largest webhook body accepted (bytes) unless ``create_app`` is told otherwise."""

DEFINITION_CACHE_SIZE = 1024
"""Definition versions kept in memory (they are immutable, so never stale)."""

SECRETS_TTL_SECONDS = 2.0
"""How long stored secret variables are reused before they are read again."""


@dataclass(eq=False, kw_only=True)
class ServerState:
    """The running stores and queue behind one app, and what it caches."""

    stores: Stores
    queue: Queue
    metrics: Metrics
    rate_limiter: RateLimiter
    body_limit: int = DEFAULT_BODY_LIMIT
    clock: Callable[[], float] = time.time
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    #: Held while a sync runs: the API's POST /sync and `vecron up`'s reconcile loop.
    sync_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Called after a sync through the API (`vecron up` wakes its scheduler).
    after_sync: list[Callable[[], None]] = field(default_factory=list)
    _definitions: OrderedDict[tuple[str, str], Job] = field(default_factory=OrderedDict)
    _secrets: dict[str, str] | None = None
    _secrets_read_at: float = 0.0

    async def definition(self, job: JobRecord) -> Job | None:
        """The definition version ``job`` points at, or ``None`` while it is missing."""
        if job.content_hash is None:
            return None
        key = (job.job_id, job.content_hash)
        cached = self._definitions.get(key)
        if cached is not None:
            self._definitions.move_to_end(key)
            return cached
        path = paths.definition_version_path(job.job_id, job.content_hash)
        try:
            data = await self.stores.objects.get(path)
        except ObjectNotFound:
            return None
        definition = Job.model_validate(json.loads(data))
        self._definitions[key] = definition
        if len(self._definitions) > DEFINITION_CACHE_SIZE:
            self._definitions.popitem(last=False)
        return definition

    async def stored_secrets(self) -> dict[str, str]:
        """Secret variables (decrypted), read at most every ``SECRETS_TTL_SECONDS``."""
        now = time.monotonic()
        if self._secrets is None or now - self._secrets_read_at > SECRETS_TTL_SECONDS:
            stored = await self.stores.database.get_variables(decrypt=True)
            self._secrets = {name: v.value for name, v in stored.items() if v.secret}
            self._secrets_read_at = now
        return self._secrets

    async def enqueue(self, record: ExecutionRecord) -> None:
        """Hand a new execution to the workers (a queued one only)."""
        if record.status == "queued":
            await enqueue(self.queue, record)
