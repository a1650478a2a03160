"""Rate limits in Redis, shared by every vecron process that uses the same server.

Each key is a sorted set ``vecron:ratelimit:<key>`` of allowed hits scored by their
time in microseconds. One Lua script prunes the window, counts, and records the hit
only when it is allowed, so concurrent hits from any number of processes are exact.
Time is the Redis server's (``TIME``), so the processes' clocks need not agree. A key
expires one window after its newest allowed hit.

A refusal is remembered in the process until its ``retry_after`` has passed, and hits
of that key (with that limit and window) are refused there without asking Redis, so a
flood costs one round trip per key and window, not one per request. This is exact: a
slot can only free when a recorded hit leaves the window, which ``retry_after`` says
when, and other processes can only add hits. (Deleting the key by hand takes effect
in a process once its remembered refusal has run out.)
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions

from vecron.backends.ratelimit.base import RateDecision, check_arguments
from vecron.errors import BackendUnavailable, ConfigurationError

KEY_PREFIX = "vecron:ratelimit:"
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_CONNECTIONS = 50
MAX_REMEMBERED_REFUSALS = 10_000  # past this, expired ones are dropped on the next refusal
_MICROSECONDS = 1_000_000

# KEYS[1] the key; ARGV: limit, window (µs), a member unique to this hit.
# Numbers go to Redis through string.format: Lua's tostring keeps only 14 digits, too
# few for a time in microseconds.
_HIT_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  return {1, limit - count - 1, 0}
end
local edge = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
local retry = tonumber(edge[2]) + window - now
if retry < 1 then retry = 1 end
return {0, 0, retry}
"""

# Any Redis error: unreachable, a wrong password, out of memory, a read-only replica.
_UNREACHABLE = (redis.exceptions.RedisError, OSError)


class RedisRateLimiter:
    """Sliding-window logs in Redis (see the module docstring).

    Give it a ready ``client`` (it stays open on :meth:`close`), or use
    :meth:`from_url`, which opens one that :meth:`close` closes. ``prefix`` namespaces
    the keys (tests use their own).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = KEY_PREFIX,
        url: str | None = None,
        owns_client: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock
        # (key, limit, window) -> the clock() reading until which it is refused
        self._refused_until: dict[tuple[str, int, float], float] = {}
        self._prefix = prefix
        self._shown = redact_redis_url(url) if url else "Redis"
        self._owns_client = owns_client
        self._script = client.register_script(_HIT_SCRIPT)
        # Members must be unique per hit; a random stem keeps processes apart.
        self._stem = secrets.token_hex(6)
        self._counter = itertools.count()

    @classmethod
    def from_url(cls, url: str, *, prefix: str = KEY_PREFIX) -> RedisRateLimiter:
        """A limiter on its own client for ``redis://[:password@]host:port/db`` (or
        ``rediss://``, ``unix://``). Nothing is contacted yet.

        Its pool holds up to ``max_connections`` (50) connections; a hit beyond them
        waits for one rather than failing, as a flood would make it. Timeouts default to
        5 s; the URL's query can set ``max_connections``, ``timeout`` (the wait for a
        connection), ``socket_timeout`` and ``socket_connect_timeout``.
        """
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=DEFAULT_MAX_CONNECTIONS,
                timeout=DEFAULT_TIMEOUT_SECONDS,
                socket_timeout=DEFAULT_TIMEOUT_SECONDS,
                socket_connect_timeout=DEFAULT_TIMEOUT_SECONDS,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"Redis URL {redact_redis_url(url)} is malformed: {exc}"
            ) from None
        return cls(aioredis.Redis(connection_pool=pool), prefix=prefix, url=url, owns_client=True)

    async def hit(self, key: str, limit: int, window_seconds: float = 60.0) -> RateDecision:
        check_arguments(limit, window_seconds)
        remembered = (key, limit, window_seconds)
        until = self._refused_until.get(remembered)
        if until is not None:
            left = until - self._clock()
            if left > 0:
                return RateDecision(allowed=False, remaining=0, retry_after=left)
            del self._refused_until[remembered]
        window = max(1, round(window_seconds * _MICROSECONDS))
        member = f"{self._stem}:{next(self._counter)}"
        try:
            allowed, remaining, retry = await self._script(
                keys=[self._prefix + key], args=[limit, window, member]
            )
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from None
        if allowed:
            return RateDecision(allowed=True, remaining=int(remaining), retry_after=0.0)
        retry_after = int(retry) / _MICROSECONDS
        # Counted from the answer's arrival, which is after Redis decided: never early.
        self._remember_refusal(remembered, self._clock() + retry_after)
        return RateDecision(allowed=False, remaining=0, retry_after=retry_after)

    def _remember_refusal(self, remembered: tuple[str, int, float], until: float) -> None:
        if len(self._refused_until) >= MAX_REMEMBERED_REFUSALS:
            now = self._clock()
            self._refused_until = {k: t for k, t in self._refused_until.items() if t > now}
            if len(self._refused_until) >= MAX_REMEMBERED_REFUSALS:
                return  # all still live: ask Redis rather than grow without bound
        self._refused_until[remembered] = until

    @property
    def remembered_refusals(self) -> int:
        """How many refusals this process remembers (expired ones until a sweep)."""
        return len(self._refused_until)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from None

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose(close_connection_pool=True)

    def describe(self) -> str:
        return f"Redis rate limiter at {self._shown}"

    def _unavailable(self, error: BaseException) -> BackendUnavailable:
        reason = str(error) or type(error).__name__
        password = _password(self._client)
        if password:
            reason = reason.replace(password, "***")
        return BackendUnavailable(f"Redis at {self._shown} is unavailable: {reason}")


def redact_redis_url(url: str) -> str:
    """``url`` without its password and query (which may also carry one), for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username
    netloc = f"{user}@{host}" if user else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def _password(client: aioredis.Redis) -> str | None:
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    password = kwargs.get("password")
    return password if isinstance(password, str) and password else None
