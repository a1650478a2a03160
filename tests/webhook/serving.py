"""A Starlette app served by uvicorn on a free 127.0.0.1 port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0


def _listening(app: ASGIApp) -> tuple[socket.socket, int, uvicorn.Server]:
    """A bound loopback socket (IPPROTO_TCP, so accepted connections get TCP_NODELAY),
    its port, and a quiet uvicorn server for ``app``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    return sock, sock.getsockname()[1], uvicorn.Server(config)


@contextlib.contextmanager
def serve_app(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    sock, port, server = _listening(app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"app-{port}", daemon=True
    )
    with contextlib.closing(sock):
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test app did not start")
            time.sleep(0.01)
        try:
            yield f"http://{LOOPBACK}:{port}"
        finally:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT_SECONDS)


@contextlib.asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on the running event loop until the block ends; yields its base URL.

    For apps over stores and queues made on the test's own loop (an in-process queue
    belongs to one loop), where :func:`serve_app`'s thread would need a loop of its own.
    """
    sock, port, server = _listening(app)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    with contextlib.closing(sock):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                task.result() if task.done() else task.cancel()
                raise RuntimeError("the test app did not start")
            await asyncio.sleep(0.01)
        try:
            yield f"http://{LOOPBACK}:{port}"
        finally:
            server.should_exit = True
            await task
