"""The ``http`` step: one HTTP request through httpx; its response goes into the Job Context.

Request (DESIGN.md, "Step configs and outputs"):

- ``url``, ``headers``, ``query`` and ``body`` are rendered at run time. A body that is
  an object or a list (also one that a whole-value reference turned into one; any
  non-string value) is sent as JSON with ``Content-Type: application/json`` unless the
  config sets a Content-Type; a string is sent as is, in UTF-8. In ``query`` a None
  leaves the parameter out and a list repeats it; query parameters are merged into a
  query string already in the URL (the config's win).
- ``timeout_seconds`` is the budget of the whole request: connecting, sending, waiting
  for the response and reading its body. The step's own timeout is the worker's.
- Auth: ``basic``; ``bearer``; ``oauth2`` client credentials, where the client
  authenticates to ``token_url`` with HTTP Basic (RFC 6749 §2.3.1: id and secret
  form-encoded, then base64), never with form fields. Tokens are cached per
  (token_url, client_id, scope, secret) until shortly before ``expires_in`` (without
  one, until a 401), fetched once when concurrent runs need one, and fetched anew once
  when the target answers 401.
- Cookies are never kept between requests (every job shares the client); a ``Cookie``
  header in the config is sent, but not along redirects.

Output ``{status, headers, body}``:

- ``headers``: lower-case names, repeated headers joined by ``", "``; without
  ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` or any header
  whose value is a credential; credentials inside other values become ``******``.
- ``body``: the parsed JSON when the Content-Type is JSON (``application/json``,
  ``text/json``, ``…+json``), or when there is no Content-Type and the body parses as
  a JSON object or array; otherwise text, decoded with the declared charset, else as
  UTF-8. A body that declares no charset and is not UTF-8 is binary: ``body`` is then
  its base64 and the output gets ``"body_encoding": "base64"``. An empty body (and any
  HEAD response) is None. Credentials in the body's strings become ``******``.
- A body that says it is JSON but does not parse fails the step; the error's output
  keeps it as text. A body over ``max_response_bytes`` (decoded size) fails the step
  without being read further.

Circuit breaker: with one (:mod:`vecron.backends.breaker`), each request, the oauth2
token request too, asks the breaker of its target (``scheme://host:port``) first and
fails fast with :class:`~vecron.errors.CircuitOpen`, without connecting, while it is
open. Connection errors, timeouts, broken connections and 5xx answers count as the
target's failures; any other answer (4xx included) is a success, and a config that does
not render or validate never reaches the breaker.

Every failure is a :class:`~vecron.errors.StepFailed` naming the method, the URL
(password hidden, secrets scrubbed) and the cause; an unexpected status keeps the
response as the error's output. Request headers are never logged; httpx's own
``HTTP Request:`` line (the raw URL) and httpcore's response-header debug line are
dropped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from datetime import time as time_of_day
from decimal import Decimal
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus, urlencode

import httpx

from vecron import __version__
from vecron.backends.breaker import CircuitBreaker, guarded, network_target
from vecron.errors import StepFailed
from vecron.runtime.steps.base import StepRun
from vecron.runtime.values import MASK, ValueResolver
from vecron.spec.models import BasicAuth, BearerAuth, HttpConfig, OAuth2Auth
from vecron.spec.references import value_to_text

USER_AGENT = f"vecron/{__version__}"
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: A token is refreshed this long before it expires: 10 % of its lifetime, at most 30 s.
TOKEN_EXPIRY_MARGIN_SECONDS = 30.0
TOKEN_RESPONSE_MAX_BYTES = 1024 * 1024
SNIPPET_CHARS = 200
_MIN_SECRET_CHARS = 4  # as ValueResolver: masking shorter strings garbles every message
_JSON_MEDIA = re.compile(r"^(application|text)/([^;\s]+\+)?json$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^/?#@]*@")


class HttpStepExecutor:
    """Runs ``http`` steps over one pooled httpx client per TLS-verification setting.

    Clients are created on first use and closed by :meth:`close`; OAuth2 tokens are
    cached in the executor. ``breaker`` guards every target (none: no breaker; the
    worker's :func:`~vecron.runtime.steps.default_executors` gives one). Creating one
    adds a filter to the ``httpx`` and ``httpcore`` loggers that drops the lines
    holding the raw URL or the response headers.
    """

    step_type: ClassVar[str] = "http"

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        max_redirects: int = 20,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._breaker = breaker
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        )
        self._max_redirects = max_redirects
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._tokens: dict[_TokenKey, _Token] = {}
        self._token_locks: dict[_TokenKey, asyncio.Lock] = {}
        _quiet_httpx_log()

    async def run(self, config: HttpConfig, run: StepRun) -> dict[str, Any]:
        redact = _Redactor(run.values)
        oauth = _render_oauth2(config.auth, run.values, redact)
        request = _render_request(config, run.values, redact)
        client = self._client(config.verify_tls)
        stale: _Token | None = None
        for attempt in range(2):
            headers = dict(request.headers)
            token: _Token | None = None
            if oauth is not None:
                token = await self._access_token(
                    client=client, oauth=oauth, config=config, redact=redact, run=run, stale=stale
                )
                redact.add(token.value)
                headers["Authorization"] = f"Bearer {token.value}"
            run.log.debug("http %s %s", request.method, request.label_url)
            started = time.monotonic()
            response = await _exchange(
                client,
                request,
                headers=headers,
                timeout_seconds=config.timeout_seconds,
                follow_redirects=config.follow_redirects,
                max_bytes=config.max_response_bytes,
                redact=redact,
                breaker=self._breaker,
                give_up_on_401=token is not None and attempt == 0,
            )
            if response is None:  # 401 with a cached token: fetch a new one, once
                run.log.info("http %s: 401 with an oauth2 token, fetching a new one", request.label)
                stale = token
                continue
            run.log.info(
                "http %s -> %d (%d bytes in %.0f ms)",
                request.label,
                response.status,
                len(response.content),
                (time.monotonic() - started) * 1000,
            )
            return _check(response, config, request, redact)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, verify_tls: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify_tls)
        if client is None:
            client = httpx.AsyncClient(
                verify=verify_tls,
                limits=self._limits,
                max_redirects=self._max_redirects,
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                headers={"User-Agent": USER_AGENT},
            )
            self._clients[verify_tls] = client
        return client

    async def _access_token(
        self,
        *,
        client: httpx.AsyncClient,
        oauth: _OAuth2,
        config: HttpConfig,
        redact: _Redactor,
        run: StepRun,
        stale: _Token | None,
    ) -> _Token:
        """A fresh token for ``oauth``: the cached one, unless it is ``stale`` or expiring."""
        key = oauth.key
        cached = self._tokens.get(key)
        if cached is not None and cached is not stale and cached.fresh():
            return cached
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)  # another run may have fetched one meanwhile
            if cached is not None and cached is not stale and cached.fresh():
                return cached
            self._tokens.pop(key, None)
            token = await _fetch_token(client, oauth, config.timeout_seconds, redact, self._breaker)
            run.log.info("http: fetched an oauth2 token from %s", redact.url(oauth.token_url))
            self._tokens[key] = token
            return token


# --- rendering ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None
    label_url: str  # for messages and logs: password hidden, secrets scrubbed

    @property
    def label(self) -> str:
        return f"{self.method} {self.label_url}"


def _render_request(config: HttpConfig, values: ValueResolver, redact: _Redactor) -> _Request:
    # Everything is rendered before anything is checked, so that every secret is known
    # to the redactor by the time a message is written.
    url_text = values.render_text(config.url)
    header_values = {name: values.render_text(value) for name, value in config.headers.items()}
    query = {name: values.render(value) for name, value in config.query.items()}
    body = values.render(config.body) if config.body is not None else None
    auth_header = _render_auth_header(config.auth, values, redact)

    method = config.method
    url = _parse_url(url_text, method, redact)
    if url.username or url.password:
        if config.auth is not None:  # the configured auth wins over the URL's userinfo
            url = url.copy_with(username=None, password=None)
        else:  # httpx sends the userinfo as HTTP Basic
            userinfo = f"{url.username}:{url.password}".encode()
            redact.add(url.password, base64.b64encode(userinfo).decode("ascii"))
    params = {
        name: [value_to_text(item) for item in items if item is not None]
        for name, value in query.items()
        for items in [value if isinstance(value, list) else [value]]
    }
    params = {name: texts for name, texts in params.items() if texts}
    if params:
        url = url.copy_merge_params(params)
    label_url = redact.url(str(url))

    headers: dict[str, str] = {}
    for name, value in header_values.items():
        if not _HEADER_NAME.match(name):
            raise StepFailed(f"{method} {label_url}: invalid header name {name!r}")
        if any(char in value for char in "\r\n\0"):
            raise StepFailed(
                f"{method} {label_url}: the value of header {name!r} has a line break or NUL"
            )
        headers[name] = value
        if name.lower() in SENSITIVE_HEADERS:  # a literal credential is still one
            redact.add(value, *value.split(None, 1)[1:])
    if config.auth is not None:
        _drop_header(headers, "authorization")
    if auth_header is not None:
        headers["Authorization"] = auth_header

    content: bytes | None = None
    if isinstance(body, str):
        content = body.encode("utf-8", "replace")
    elif config.body is not None:
        content = _json_bytes(body, f"{method} {label_url}")
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    return _Request(method=method, url=url, headers=headers, content=content, label_url=label_url)


def _parse_url(text: str, method: str, redact: _Redactor) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        cause = redact.text(str(exc))
        raise StepFailed(f"{method} {redact.url(text)}: invalid url ({cause})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise StepFailed(
            f"{method} {redact.url(text)}: the url must be absolute, http:// or https://"
        )
    return url


def _render_auth_header(
    auth: BasicAuth | BearerAuth | OAuth2Auth | None, values: ValueResolver, redact: _Redactor
) -> str | None:
    if isinstance(auth, BasicAuth):
        username = values.render_text(auth.username)
        password = values.render_text(auth.password)
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        redact.add(password, encoded)
        return f"Basic {encoded}"
    if isinstance(auth, BearerAuth):
        token = values.render_text(auth.token)
        redact.add(token)
        return f"Bearer {token}"
    return None  # oauth2 sets its header per attempt


def _json_bytes(value: Any, label: str) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise StepFailed(f"{label}: the body cannot be sent as JSON ({exc})") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only \u escapes can carry it
        return json.dumps(value, allow_nan=False, default=_json_default).encode("ascii")


def _json_default(value: Any) -> Any:
    if isinstance(value, date | time_of_day):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _drop_header(headers: dict[str, str], lower_name: str) -> None:
    for name in [name for name in headers if name.lower() == lower_name]:
        del headers[name]


# --- the exchange ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Response:
    status: int
    reason: str
    headers: httpx.Headers
    content: bytes


class _BodyTooLarge(Exception):
    def __init__(self, cause: str, response: httpx.Response) -> None:
        super().__init__(cause)
        self.response = response


async def _exchange(
    client: httpx.AsyncClient,
    request: _Request,
    *,
    headers: Mapping[str, str],
    timeout_seconds: float,
    follow_redirects: bool,
    max_bytes: int,
    redact: _Redactor,
    breaker: CircuitBreaker | None = None,
    give_up_on_401: bool = False,
    what: str = "",
) -> _Response | None:
    """Send ``request`` and read its response, at most ``max_bytes`` of body.

    Returns None for a 401 when ``give_up_on_401``. Every transport failure becomes a
    StepFailed naming ``what`` (a prefix such as ``"oauth2 token request "``), the
    request and the cause. With a ``breaker``, the request's target
    (``scheme://host:port``) must be closed or this is its probe
    (:class:`~vecron.errors.CircuitOpen` otherwise, before connecting); transport
    failures, timeouts and 5xx answers count as its failures, any other answer as a
    success.
    """
    label = f"{what}{request.label}"
    reading = False
    async with guarded(breaker, breaker_target(request.url)) as call:
        try:
            async with (
                asyncio.timeout(timeout_seconds),
                client.stream(
                    request.method,
                    request.url,
                    headers=[(name.encode(), value.encode()) for name, value in headers.items()],
                    content=request.content,
                    timeout=httpx.Timeout(timeout_seconds),
                    follow_redirects=follow_redirects,
                ) as response,
            ):
                if response.status_code >= 500:
                    call.failed()
                if response.status_code == 401 and give_up_on_401:
                    return None
                reading = True
                content = await _read_limited(response, request.method, max_bytes)
                return _Response(
                    status=response.status_code,
                    reason=response.reason_phrase,
                    headers=response.headers,
                    content=content,
                )
        except _BodyTooLarge as exc:
            head = _response_head(exc.response, redact)
            raise StepFailed(f"{label} failed: {exc}", output=head) from None
        except TimeoutError:
            call.failed()
            phase = "reading the response body" if reading else "waiting for the response"
            cause = f"timed out after {timeout_seconds:g} s (timeout_seconds) {phase}"
            raise StepFailed(f"{label} failed: {cause}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if isinstance(exc, _TARGET_FAILURES):
                call.failed()
            cause = _transport_cause(exc, timeout_seconds, reading, redact, client.max_redirects)
            raise StepFailed(f"{label} failed: {cause}") from None


#: What counts as the target failing: it cannot be reached, is too slow or breaks the
#: connection (a redirect loop, an undecodable body or a bad redirect URL do not).
_TARGET_FAILURES = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def breaker_target(url: httpx.URL) -> str:
    """The circuit breaker's target of ``url``: ``scheme://host:port``, nothing else."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return network_target(url.scheme, url.host, port)


async def _read_limited(response: httpx.Response, method: str, max_bytes: int) -> bytes:
    if method == "HEAD":
        return b""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _BodyTooLarge(
            f"the response body ({int(declared)} bytes) is over max_response_bytes={max_bytes}",
            response,
        )
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        if len(buffer) + len(chunk) > max_bytes:
            raise _BodyTooLarge(
                f"the response body is over max_response_bytes={max_bytes} "
                f"(stopped reading after {len(buffer) + len(chunk)} bytes)",
                response,
            )
        buffer += chunk
    return bytes(buffer)


def _transport_cause(
    exc: httpx.HTTPError | httpx.InvalidURL,
    timeout: float,
    reading: bool,
    redact: _Redactor,
    max_redirects: int,
) -> str:
    budget = f"{timeout:g} s (timeout_seconds)"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timeout: no connection within {budget}"
    if isinstance(exc, httpx.WriteTimeout):
        return f"write timeout: the request could not be sent within {budget}"
    if isinstance(exc, httpx.ReadTimeout):
        if reading:
            return f"read timeout: the response body stalled for {budget}"
        return f"read timeout: no response within {budget}"
    if isinstance(exc, httpx.PoolTimeout):
        return f"pool timeout: no free connection within {budget} (too many concurrent requests)"
    if isinstance(exc, httpx.ConnectError):
        return _connect_cause(exc, redact)
    if isinstance(exc, httpx.TooManyRedirects):
        return f"too many redirects (more than {max_redirects})"
    detail = redact.text(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server's reply is not valid HTTP ({detail})"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return f"the connection broke ({detail})"
    if isinstance(exc, httpx.DecodingError):
        return f"the response body cannot be decoded ({detail})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"unsupported or invalid url, perhaps in a redirect ({detail})"
    return f"{type(exc).__name__}: {detail}"


def _connect_cause(exc: httpx.ConnectError, redact: _Redactor) -> str:
    try:
        url = exc.request.url
        where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    except RuntimeError:  # no request attached
        where = "the server"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup of {where.rsplit(':', 1)[0]!r} failed ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where} (nothing listens there?)"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate of {where} not trusted ({cause.verify_message}); "
                "verify_tls: false turns the check off"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {where} failed ({cause.reason or cause})"
    return f"cannot connect to {where} ({redact.text(str(exc)) or type(exc).__name__})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# --- the response ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Body:
    value: Any
    binary: bool = False
    json_error: str | None = None


def _check(
    response: _Response, config: HttpConfig, request: _Request, redact: _Redactor
) -> dict[str, Any]:
    body = _parse_body(response.content, response.headers.get("content-type"))
    output = _output(response, body, redact)
    expected = config.expected_status
    if not (response.status in expected if expected else 200 <= response.status < 300):
        wanted = ", ".join(map(str, expected)) if expected else "2xx"
        raise StepFailed(
            f"{request.label} returned HTTP {response.status} {response.reason} "
            f"(expected {wanted}){_snippet(output['body'], body.binary)}",
            output=output,
        )
    if body.json_error is not None:
        raise StepFailed(
            f"{request.label}: the response says it is JSON but is not "
            f"({body.json_error}){_snippet(output['body'], body.binary)}",
            output=output,
        )
    return output


def _output(response: _Response, body: _Body, redact: _Redactor) -> dict[str, Any]:
    output: dict[str, Any] = {
        "status": response.status,
        "headers": _output_headers(response.headers, redact),
        # base64 is left alone: masking a short secret could hit random bytes in it
        "body": body.value if body.binary else redact.data(body.value),
    }
    if body.binary:
        output["body_encoding"] = "base64"
    return output


def _response_head(response: httpx.Response, redact: _Redactor) -> dict[str, object]:
    return {
        "status": response.status_code,
        "headers": _output_headers(response.headers, redact),
        "body": None,
    }


def _output_headers(headers: httpx.Headers, redact: _Redactor) -> dict[str, str]:
    needles = redact.needles()
    result: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in SENSITIVE_HEADERS or value in needles:
            continue
        result[lower] = redact.text(value, needles)
    return result


def _parse_body(content: bytes, content_type: str | None) -> _Body:
    if not content:
        return _Body(None)
    media, charset = _media_type(content_type)
    if media is not None and _JSON_MEDIA.match(media):
        try:
            return _Body(json.loads(content.decode(charset) if charset else content))
        except (ValueError, LookupError, RecursionError) as exc:
            return replace(_text(content, charset), json_error=str(exc) or "nested too deep")
    text = _text(content, charset)
    if media is None and not text.binary and text.value.lstrip()[:1] in ("{", "["):
        try:
            return _Body(json.loads(text.value))
        except (ValueError, RecursionError):
            pass
    return text


def _text(content: bytes, charset: str | None) -> _Body:
    if charset:
        try:
            return _Body(content.decode(charset, "replace"))
        except LookupError:
            pass  # an unknown charset: as if none were declared
    try:
        return _Body(content.decode("utf-8"))
    except UnicodeDecodeError:
        return _Body(base64.b64encode(content).decode("ascii"), binary=True)


def _media_type(content_type: str | None) -> tuple[str | None, str | None]:
    if not content_type:
        return None, None
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.strip().lower() or None, charset


def _snippet(body: Any, binary: bool) -> str:
    if body is None or binary:
        return ""
    try:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    except (ValueError, RecursionError):
        return ""
    text = " ".join(text.split())
    if len(text) > SNIPPET_CHARS:
        text = text[:SNIPPET_CHARS] + "…"
    return f": {text}"


# --- oauth2 client credentials -----------------------------------------------------


_TokenKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class _OAuth2:
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None

    @property
    def key(self) -> _TokenKey:
        secret = hashlib.sha256(self.client_secret.encode("utf-8", "surrogatepass")).hexdigest()
        return (self.token_url, self.client_id, self.scope or "", secret)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float | None  # time.monotonic(); None: until the target answers 401

    def fresh(self) -> bool:
        return self.refresh_at is None or time.monotonic() < self.refresh_at


def _render_oauth2(
    auth: BasicAuth | BearerAuth | OAuth2Auth | None, values: ValueResolver, redact: _Redactor
) -> _OAuth2 | None:
    if not isinstance(auth, OAuth2Auth):
        return None
    oauth = _OAuth2(
        token_url=values.render_text(auth.token_url),
        client_id=values.render_text(auth.client_id),
        client_secret=values.render_text(auth.client_secret),
        scope=values.render_text(auth.scope) if auth.scope is not None else None,
    )
    redact.add(oauth.client_secret)
    return oauth


async def _fetch_token(
    client: httpx.AsyncClient,
    oauth: _OAuth2,
    timeout_seconds: float,
    redact: _Redactor,
    breaker: CircuitBreaker | None,
) -> _Token:
    credentials = f"{quote_plus(oauth.client_id)}:{quote_plus(oauth.client_secret)}"
    encoded = base64.b64encode(credentials.encode()).decode("ascii")
    redact.add(encoded)
    form = {"grant_type": "client_credentials"}
    if oauth.scope:
        form["scope"] = oauth.scope
    url = _parse_url(oauth.token_url, "POST", redact)
    request = _Request(
        method="POST",
        url=url,
        headers={
            "Authorization": f"Basic {encoded}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        content=urlencode(form).encode("ascii"),
        label_url=redact.url(str(url)),
    )
    what = "oauth2 token request "
    sent_at = time.monotonic()
    response = await _exchange(
        client,
        request,
        headers=request.headers,
        timeout_seconds=timeout_seconds,
        follow_redirects=False,
        max_bytes=TOKEN_RESPONSE_MAX_BYTES,
        redact=redact,
        breaker=breaker,
        what=what,
    )
    assert response is not None
    body = _parse_body(response.content, response.headers.get("content-type"))
    value = body.value
    if not 200 <= response.status < 300:
        detail = _snippet(redact.data(value), body.binary)
        raise StepFailed(
            f"{what}{request.label} returned HTTP {response.status} {response.reason}{detail}"
        )
    token = value.get("access_token") if isinstance(value, dict) else None
    if not isinstance(token, str) or not token:
        raise StepFailed(f"{what}{request.label}: the response has no access_token")
    redact.add(token)
    lifetime = _seconds(value.get("expires_in"))
    if lifetime is None:
        return _Token(token, None)
    margin = min(TOKEN_EXPIRY_MARGIN_SECONDS, lifetime * 0.1)
    return _Token(token, sent_at + lifetime - margin)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):  # some providers send "3599"
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and value > 0:
        return float(value)
    return None


# --- keeping credentials out -------------------------------------------------------


class _Redactor:
    """Masks credentials (the run's secrets and everything the auth used) with ``******``."""

    def __init__(self, values: ValueResolver) -> None:
        self._values = values
        self._credentials: set[str] = set()

    def add(self, *credentials: str) -> None:
        self._credentials.update(c for c in credentials if len(c) >= _MIN_SECRET_CHARS)

    def needles(self) -> list[str]:
        """Every credential and its URL- and JSON-escaped forms, longest first."""
        found: set[str] = set()
        for secret in self._values.secrets_used | self._credentials:
            escaped = json.dumps(secret)[1:-1]
            found.update(
                (secret, quote(secret), quote(secret, safe=""), quote_plus(secret), escaped)
            )
        return sorted(found, key=len, reverse=True)

    def text(self, text: str, needles: list[str] | None = None) -> str:
        text = self._values.scrub(text)
        for needle in self.needles() if needles is None else needles:
            text = text.replace(needle, MASK)
        return text

    def url(self, text: str) -> str:
        return self.text(_URL_PASSWORD.sub(rf"\g<1>{MASK}@", text))

    def data(self, value: Any) -> Any:
        needles = self.needles()
        if not needles or value is None:
            return value
        if isinstance(value, str):
            return self.text(value, needles)
        try:
            dumped = json.dumps(value, ensure_ascii=False)
        except (ValueError, RecursionError):
            dumped = None
        if dumped is not None and not any(needle in dumped for needle in needles):
            return value
        try:
            return self._walk(value, needles)
        except RecursionError:  # nested too deep to walk: keep nothing rather than a secret
            return MASK

    def _walk(self, value: Any, needles: list[str]) -> Any:
        if isinstance(value, str):
            return self.text(value, needles)
        if isinstance(value, dict):
            return {
                self.text(key, needles): self._walk(item, needles) for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._walk(item, needles) for item in value]
        return value


class _HttpxLogFilter(logging.Filter):
    """Drops the httpx and httpcore lines that can hold a credential: httpx's
    ``HTTP Request: GET <url>`` (the raw URL) and httpcore's debug line with the
    response headers (``Set-Cookie``, echoed tokens)."""

    PREFIXES = ("HTTP Request:", "receive_response_headers.complete")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def _quiet_httpx_log() -> None:
    for name in ("httpx", "httpcore.http11", "httpcore.http2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HttpxLogFilter) for f in logger.filters):
            logger.addFilter(_HttpxLogFilter())
