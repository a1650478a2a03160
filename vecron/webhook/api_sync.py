"""``POST /api/v1/sync``: make the stores match the configured job repository, now.

The repository is the one the settings name (``VECRON_REPO``, ``VECRON_REPO_REF``,
``VECRON_REPO_PATH``); without one the answer is 409. Two kinds of caller may start a
sync: a token with ``job:write``, or a Git host's push webhook signed in GitHub's
scheme (``X-Hub-Signature-256`` over the body) with ``VECRON_SYNC_SECRET``. A push
webhook's body is not read beyond its signature: any signed delivery syncs.

One sync runs at a time per server. A call that arrives during one waits for it to
end (at most :data:`SYNC_WAIT_SECONDS`) and then syncs itself, so a push that lands
mid-sync is never lost; past the wait it gets 409 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from starlette.responses import Response

from vecron.errors import SignatureRefused, SourceError, SyncRefused
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import open_source
from vecron.reconciler.sync import sync_once
from vecron.webhook.api_auth import unauthorized
from vecron.webhook.api_common import ApiError, Call, Caller, log
from vecron.webhook.responses import json_response
from vecron.webhook.signing import GITHUB_SIGNATURE_HEADER, verify
from vecron.webhook.state import ServerState
from vecron.webhook.tokens import Permission

SYNC_WAIT_SECONDS = 60.0
"""How long a sync request waits for the sync in progress before it answers 409."""

SIGNED_CALLER = "(signed push webhook)"
"""The caller name logged for a signed sync (token names cannot look like it)."""


class SyncRunner:
    """Runs syncs from the settings' repository, one at a time."""

    def __init__(self, state: ServerState, *, wait_seconds: float = SYNC_WAIT_SECONDS) -> None:
        self.state = state
        self.wait_seconds = wait_seconds
        self.lock = state.sync_lock  # shared with the reconcile loop of `vecron up`

    def signed(self, call: Call) -> bool:
        """Whether ``call`` offers a push webhook's signature instead of a token."""
        headers = call.request.headers
        return "authorization" not in headers and GITHUB_SIGNATURE_HEADER in headers

    async def signed_caller(self, call: Call) -> Caller:
        """The caller of a signed push webhook, or 401."""
        secret = self.state.stores.settings.sync_secret
        if not secret:
            raise unauthorized(
                "signed sync requests are off: VECRON_SYNC_SECRET is not set", invalid=True
            )
        body = await call.read_body()
        try:
            verify(call.request.headers, body, secret, ["github"], now=self.state.clock())
        except SignatureRefused as exc:
            raise unauthorized(f"signature refused: {exc.reason}", invalid=True) from None
        return Caller(name=SIGNED_CALLER, role=None, permissions=frozenset({Permission.JOB_WRITE}))

    async def handle(self, call: Call) -> Response:
        result = await self.sync()
        log.info(
            "sync by %s: %s",
            call.caller.name,
            result["status"],
            extra={"token": call.caller.name, "sync_id": result["sync_id"]},
        )
        return json_response(result)

    async def sync(self) -> dict[str, Any]:
        """Sync now (waiting for a sync in progress); the result as the API shows it."""
        settings = self.state.stores.settings
        if not settings.repo:
            raise ApiError(
                409,
                "no_repository",
                "no job repository is configured: set VECRON_REPO (and VECRON_REPO_REF, "
                "VECRON_REPO_PATH) for the server",
            )
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self.lock.acquire()
        except TimeoutError:
            raise ApiError(
                409,
                "sync_in_progress",
                f"another sync has been running for over {self.wait_seconds:g} s",
                {"Retry-After": str(max(1, math.ceil(self.wait_seconds)))},
            ) from None
        try:
            source = open_source(
                settings.repo,
                ref=settings.repo_ref,
                path=settings.repo_path,
                cache_dir=settings.home / "git",
            )
            try:
                result = await sync_once(source, self.state.stores, SyncOptions())
                for hook in self.state.after_sync:
                    hook()
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    await asyncio.to_thread(close)
        except SyncRefused as exc:
            raise ApiError(409, "sync_refused", str(exc)) from None
        except SourceError as exc:
            raise ApiError(502, "source_error", str(exc)) from None
        finally:
            self.lock.release()
        plan = result.plan
        return {
            "status": result.status.value,
            "wrote": result.wrote,
            "sync_id": result.sync_id,
            "source": plan.source,
            "commit": plan.commit,
            "counts": plan.counts,
            "errors": plan.errors(),
        }
