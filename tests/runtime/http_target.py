"""An HTTP target for tests: a Starlette app served by uvicorn on a free 127.0.0.1 port.

:func:`serve_http_target` runs the app in a background thread and yields an
:class:`HttpTarget` (its base URL, the credentials it accepts, counters); with
``tls=True`` it serves HTTPS with a throw-away self-signed certificate. The
:func:`http_target` fixture (session-scoped) wraps it; a ``conftest.py`` exposes it with
``from tests.runtime.http_target import http_target``. :func:`serve_raw_tcp` is a
server that answers every connection with fixed bytes (not HTTP), and
:func:`free_port` a port where nothing listens.

Routes (every one answers JSON unless it says otherwise):

- ``/echo`` (every method): ``{method, path, query, headers, body}``; ``query`` maps a
  name to its value (a list when repeated), ``headers`` has lower-case names, ``body``
  is the parsed JSON for a JSON Content-Type, else the text (None when empty).
- ``/status/{code}``: that status, body ``{"status": code, "error": "..."}``.
- ``/slow?seconds=S``: answers after S seconds (stops early when the client left).
- ``/drip?chunks=N&interval=S``: N chunks of 1 KiB, S seconds apart (headers at once).
- ``/bytes?n=N&binary=0|1&length=1|0``: N bytes streamed in 64 KiB chunks, text
  (``x``) or binary (not UTF-8), with or without a Content-Length.
- ``/raw?body=TEXT&content_type=T``: TEXT as is, with Content-Type T (none when absent).
- ``/garbage``: ``application/json`` that is not JSON.
- ``/response-headers?Name=value…``: those response headers.
- ``/cookies/set?name=value``: sets that cookie.
- ``/auth/basic``, ``/auth/bearer``: 200 with the right credentials, else 401.
- ``/oauth/token`` (POST): OAuth2 client credentials; the client authenticates with
  HTTP Basic (RFC 6749 §2.3.1) or with form fields. Clients come from
  :meth:`HttpTarget.oauth_client`; each token has the client's ``expires_in``.
- ``/oauth/protected``: 200 with a live token from ``/oauth/token``, else 401.
- ``/redirect?to=PATH&status=302``: a redirect; ``/redirect/loop``: one to itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import ipaddress
import secrets
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
BINARY_CHUNK = bytes(range(128, 256)) * 512  # 64 KiB, never valid UTF-8
TEXT_CHUNK = b"x" * 65536


@dataclass(frozen=True, slots=True)
class OAuthClient:
    client_id: str
    client_secret: str
    expires_in: float | None


@dataclass(slots=True)
class _IssuedToken:
    client_id: str
    scope: str | None
    expires_at: float | None  # time.monotonic()


@dataclass(slots=True)
class TargetState:
    """What the server knows; shared between its thread and the tests, under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[str, OAuthClient] = field(default_factory=dict)
    tokens: dict[str, _IssuedToken] = field(default_factory=dict)
    issued: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpTarget:
    """A running target: where it is and the credentials it accepts (random per server)."""

    base_url: str
    basic_username: str
    basic_password: str
    bearer_token: str
    state: TargetState

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def oauth_client(self, *, expires_in: float | None = 3600) -> OAuthClient:
        """Register a new OAuth2 client (a fresh id and secret) and return it."""
        client = OAuthClient(
            client_id=f"client-{secrets.token_hex(4)}",
            client_secret=f"cs-{secrets.token_urlsafe(16)}",
            expires_in=expires_in,
        )
        with self.state.lock:
            self.state.clients[client.client_id] = client
        return client

    def tokens_issued(self, client_id: str) -> int:
        with self.state.lock:
            return self.state.issued[client_id]

    def revoke_tokens(self, client_id: str) -> None:
        """Forget every token of ``client_id``: the next protected call answers 401."""
        with self.state.lock:
            for token in [t for t, i in self.state.tokens.items() if i.client_id == client_id]:
                del self.state.tokens[token]

    def hits(self, path: str) -> int:
        with self.state.lock:
            return self.state.hits[path]


# --- the app -----------------------------------------------------------------------


def build_app(target: HttpTarget) -> Starlette:
    state = target.state

    async def echo(request: Request) -> Response:
        raw = await request.body()
        body: Any = None
        if raw:
            if "json" in request.headers.get("content-type", ""):
                body = await request.json()
            else:
                body = raw.decode("utf-8", "replace")
        query: dict[str, Any] = {}
        for name in request.query_params:
            values = request.query_params.getlist(name)
            query[name] = values if len(values) > 1 else values[0]
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": query,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )

    async def status(request: Request) -> Response:
        code = int(request.path_params["code"])
        if code in (204, 304) or code < 200:
            return Response(status_code=code)
        return JSONResponse({"status": code, "error": f"status {code} as asked"}, code)

    async def slow(request: Request) -> Response:
        seconds = float(request.query_params.get("seconds", "5"))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if await request.is_disconnected():
                return Response(status_code=499)
        return JSONResponse({"slept": seconds})

    async def drip(request: Request) -> Response:
        chunks = int(request.query_params.get("chunks", "10"))
        interval = float(request.query_params.get("interval", "0.2"))

        async def body() -> AsyncIterator[bytes]:
            for _ in range(chunks):
                yield b"x" * 1024
                await asyncio.sleep(interval)

        return StreamingResponse(body(), media_type="text/plain")

    async def many_bytes(request: Request) -> Response:
        size = int(request.query_params.get("n", "1024"))
        binary = request.query_params.get("binary") == "1"
        chunk = BINARY_CHUNK if binary else TEXT_CHUNK
        media = "application/octet-stream" if binary else "text/plain"

        async def body() -> AsyncIterator[bytes]:
            left = size
            while left > 0:
                piece = chunk[: min(left, len(chunk))]
                left -= len(piece)
                yield piece

        headers = {"content-length": str(size)} if request.query_params.get("length") != "0" else {}
        return StreamingResponse(body(), media_type=media, headers=headers)

    async def raw(request: Request) -> Response:
        return Response(
            request.query_params.get("body", ""),
            media_type=request.query_params.get("content_type"),
        )

    async def garbage(request: Request) -> Response:
        return Response('{"truncated": [1, 2', media_type="application/json")

    async def response_headers(request: Request) -> Response:
        response = JSONResponse({})
        for name, value in request.query_params.multi_items():
            response.headers.append(name, value)
        return response

    async def set_cookie(request: Request) -> Response:
        response = JSONResponse(dict(request.query_params))
        for name, value in request.query_params.items():
            response.set_cookie(name, value)
        return response

    async def basic(request: Request) -> Response:
        credentials = _basic_credentials(request)
        if credentials != (target.basic_username, target.basic_password):
            return _unauthorized('Basic realm="target"')
        return JSONResponse({"authenticated": True, "user": target.basic_username})

    async def bearer(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {target.bearer_token}":
            return _unauthorized('Bearer realm="target"')
        return JSONResponse({"authenticated": True})

    async def token(request: Request) -> Response:
        # parse_qsl rather than request.form(): that needs python-multipart
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        credentials = _basic_credentials(request, form_encoded=True)
        if credentials is None and "client_id" in form:
            credentials = (form["client_id"], form.get("client_secret", ""))
        with state.lock:
            client = state.clients.get(credentials[0]) if credentials else None
        if client is None or credentials != (client.client_id, client.client_secret):
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        scope = form.get("scope")
        value = secrets.token_urlsafe(24)
        expires_at = None if client.expires_in is None else time.monotonic() + client.expires_in
        with state.lock:
            state.tokens[value] = _IssuedToken(client.client_id, scope, expires_at)
            state.issued[client.client_id] += 1
        answer: dict[str, Any] = {"access_token": value, "token_type": "Bearer"}
        if client.expires_in is not None:
            answer["expires_in"] = client.expires_in
        if scope is not None:
            answer["scope"] = scope
        return JSONResponse(answer, headers={"cache-control": "no-store"})

    async def protected(request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        with state.lock:
            issued = state.tokens.get(value) if scheme.lower() == "bearer" else None
        if issued is None or (
            issued.expires_at is not None and time.monotonic() > issued.expires_at
        ):
            return _unauthorized('Bearer error="invalid_token"')
        return JSONResponse({"client_id": issued.client_id, "scope": issued.scope})

    async def redirect(request: Request) -> Response:
        to = request.query_params.get("to", "/echo")
        return RedirectResponse(to, int(request.query_params.get("status", "302")))

    async def redirect_loop(request: Request) -> Response:
        return RedirectResponse("/redirect/loop", 302)

    app = Starlette(
        middleware=[Middleware(_CountHits, state=state)],
        routes=[
            Route("/echo", echo, methods=ALL_METHODS),
            Route("/status/{code:int}", status, methods=ALL_METHODS),
            Route("/slow", slow, methods=ALL_METHODS),
            Route("/drip", drip),
            Route("/bytes", many_bytes),
            Route("/raw", raw),
            Route("/garbage", garbage),
            Route("/response-headers", response_headers),
            Route("/cookies/set", set_cookie),
            Route("/auth/basic", basic),
            Route("/auth/bearer", bearer),
            Route("/oauth/token", token, methods=["POST"]),
            Route("/oauth/protected", protected, methods=ALL_METHODS),
            Route("/redirect", redirect, methods=ALL_METHODS),
            Route("/redirect/loop", redirect_loop),
        ],
    )

    return app


class _CountHits:
    def __init__(self, app: ASGIApp, *, state: TargetState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self._state.lock:
                self._state.hits[scope["path"]] += 1
        await self._app(scope, receive, send)


def _unauthorized(challenge: str) -> Response:
    return JSONResponse({"error": "unauthorized"}, 401, headers={"www-authenticate": challenge})


def _basic_credentials(request: Request, *, form_encoded: bool = False) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, _, password = decoded.partition(":")
    if form_encoded:  # RFC 6749 §2.3.1: id and secret are form-encoded before base64
        return unquote_plus(username), unquote_plus(password)
    return username, password


# --- running it --------------------------------------------------------------------


@contextlib.contextmanager
def serve_http_target(*, tls: bool = False) -> Iterator[HttpTarget]:
    """Run the target app on a free loopback port until the block ends."""
    # IPPROTO_TCP explicitly: asyncio only turns Nagle off (TCP_NODELAY) on accepted
    # connections of a socket that says so, and every reply would wait for an ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    target = HttpTarget(
        base_url=f"{scheme}://{LOOPBACK}:{port}",
        basic_username="vecron-user",
        basic_password=f"pw-{secrets.token_urlsafe(12)}",
        bearer_token=f"bt-{secrets.token_urlsafe(16)}",
        state=TargetState(),
    )
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        ssl_options: dict[str, Any] = {}
        if tls:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            ssl_options = _self_signed_certificate(folder)
        config = uvicorn.Config(
            build_app(target),
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            **ssl_options,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"http-target-{port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP target did not start")
            time.sleep(0.01)
        try:
            yield target
        finally:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT_SECONDS)


def _self_signed_certificate(folder: Path) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vecron-test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path)}


@contextlib.contextmanager
def serve_raw_tcp(reply: bytes) -> Iterator[str]:
    """A server that answers every connection with ``reply`` and hangs up; yields its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, name="raw-tcp", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def free_port() -> int:
    """A loopback port where nothing listens (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def http_target() -> Iterator[HttpTarget]:
    """The HTTP target app on a free port, for the whole session."""
    with serve_http_target() as target:
        yield target
