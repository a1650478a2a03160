"""The manual-trigger and read API under ``/api/v1`` (bearer tokens, roles)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from vecron.webhook.state import ServerState


def routes(state: ServerState) -> list[BaseRoute]:
    """The routes of ``/api/v1``."""
    return []
