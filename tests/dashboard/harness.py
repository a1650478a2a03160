"""A served app with synced jobs and a logged-in httpx client per role.

The app is :func:`vecron.webhook.app.create_app` over embedded stores (SQLite and a
folder), served by uvicorn on the test's loop (:func:`tests.webhook.api_harness.open_api`,
which also syncs its jobs and makes one token per role).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.webhook.api_harness import Api, open_api
from vecron.settings import Settings
from vecron.stores import Stores, open_stores

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@contextlib.asynccontextmanager
async def embedded_stores(tmp_path: Path) -> AsyncIterator[Stores]:
    settings = Settings(home=tmp_path / "home", secret_key="tests")
    async with open_stores(settings) as stores:
        yield stores


@contextlib.asynccontextmanager
async def login(api: Api, role: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client logged in with the token of ``role``."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        response = await client.post("/ui/login", data={"token": api.tokens[role], "next": "/ui/"})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/ui/"
        yield client


async def csrf_of(client: httpx.AsyncClient, path: str = "/ui/") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


@contextlib.asynccontextmanager
async def dashboard(tmp_path: Path, stores: Stores | None = None) -> AsyncIterator[Api]:
    """The served app over ``stores`` (the ``stores`` fixture), or embedded ones."""
    async with contextlib.AsyncExitStack() as stack:
        if stores is None:
            stores = await stack.enter_async_context(embedded_stores(tmp_path))
        yield await stack.enter_async_context(open_api(stores, tmp_path / "repo"))
