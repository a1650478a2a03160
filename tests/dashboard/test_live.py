"""Server-Sent Events: a change from any process reaches an open stream, and an open
stream never holds up the server's shutdown or outlives its client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request

from tests.dashboard.harness import dashboard, embedded_stores, login
from tests.webhook.api_harness import open_api
from vecron.backends.database import ExecutionStatus
from vecron.dashboard import live


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of an SSE response, as they arrive."""
    event, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif not line and event:
            yield event, data
            event, data = "", ""


async def test_a_run_that_starts_and_finishes_elsewhere_reaches_the_stream(
    tmp_path: Path,
) -> None:
    async with (
        dashboard(tmp_path) as api,
        login(api, "viewer") as client,
        client.stream("GET", "/ui/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        first = await anext(events)
        assert first == ("resync", "{}")  # catch up once at the start
        await asyncio.sleep(live.POLL_SECONDS * 1.5)  # the feed has its baseline
        # Written straight to the database, as another process would.
        record = await api.add_execution("report", status=ExecutionStatus.RUNNING)
        await _until(events, record.execution_id, "running")
        await api.stores.database.finish_execution(
            record.execution_id, worker_id=None, status="succeeded", error=None
        )
        await _until(events, record.execution_id, "succeeded")


async def _until(events: AsyncIterator[tuple[str, str]], execution_id: str, status: str) -> None:
    """Read events until one says ``execution_id`` is ``status`` (10 s at most)."""
    async with asyncio.timeout(10):
        async for event, data in events:
            if event != "executions":
                assert event in (f"execution-{execution_id}", "job-report"), event
                continue
            changed = json.loads(data)["changed"]
            if {"execution_id": execution_id, "status": status} in [
                {"execution_id": c["execution_id"], "status": c["status"]} for c in changed
            ]:
                return


async def test_the_feed_polls_only_while_someone_listens(tmp_path: Path) -> None:
    async with embedded_stores(tmp_path) as stores:
        feed = live.LiveFeed(stores.database, poll_seconds=0.05)
        async with feed.listen():
            assert feed._task is not None
            task = feed._task
            await asyncio.sleep(0.1)
            assert not task.done()
        assert task.done()
        assert feed._task is None


def _socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_an_open_stream_does_not_hold_up_the_shutdown(tmp_path: Path, http: str) -> None:
    """uvicorn as ``vecron up`` runs it: no graceful-shutdown timeout at all."""
    async with embedded_stores(tmp_path) as stores, open_api(stores, tmp_path / "repo") as api:
        sock, port = _socket()
        config = uvicorn.Config(
            api.app, http=http, lifespan="off", log_config=None, log_level="warning"
        )
        assert config.timeout_graceful_shutdown is None
        server = uvicorn.Server(config)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        with contextlib.closing(sock):
            while not server.started:
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                login_response = await client.post(
                    "/ui/login", data={"token": api.tokens["viewer"]}
                )
                assert login_response.status_code == 303
                async with client.stream("GET", "/ui/events") as response:
                    events = _events(response)  # held: a dropped one closes the stream
                    await anext(events)
                    started = time.monotonic()
                    server.should_exit = True
                    await asyncio.wait_for(serving, timeout=10)
                    assert time.monotonic() - started < 5


async def test_a_stream_ends_at_its_lifetime_and_when_the_feed_closes(tmp_path: Path) -> None:
    async def receive() -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    request = Request({"type": "http", "method": "GET", "headers": []}, receive)
    async with embedded_stores(tmp_path) as stores:
        feed = live.LiveFeed(stores.database, poll_seconds=0.05)
        started = time.monotonic()
        chunks = [chunk async for chunk in live.stream(request, feed, lifetime=0.5)]
        assert 0.5 <= time.monotonic() - started < 3
        assert chunks[0].startswith("retry: ")
        assert feed._task is None  # the poller stopped with its last listener

        async def close_soon() -> None:
            await asyncio.sleep(0.3)
            feed.close()

        closing = asyncio.create_task(close_soon())
        started = time.monotonic()
        chunks = [chunk async for chunk in live.stream(request, feed, lifetime=60)]
        assert time.monotonic() - started < 3
        await closing


async def test_a_client_that_leaves_takes_its_listener_along(tmp_path: Path) -> None:
    async def receive() -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    request = Request({"type": "http", "method": "GET", "headers": []}, receive)
    async with embedded_stores(tmp_path) as stores:
        feed = live.LiveFeed(stores.database, poll_seconds=0.05)
        events = live.stream(request, feed)
        assert (await anext(events)).startswith("retry: ")
        assert (await anext(events)).startswith("event: resync")
        assert feed._task is not None
        # Starlette closes the generator when the client disconnects.
        await events.aclose()
        assert feed._task is None
        assert not feed._listeners
