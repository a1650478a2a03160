"""Circuit breakers in Redis, shared by every vecron process that uses the same server.

Each target with a state is a hash ``vecron:breaker:<target>`` with ``failures``,
``opened_until`` (absent while closed), ``probe_until`` and ``cooldown`` (the one that
opened it, for messages), times in microseconds of the Redis server's clock (``TIME``),
so the processes' clocks need not agree. Lua scripts read and change a hash
atomically, so of any number of workers exactly one gets the half-open probe. A
success deletes the hash; a failure sets it to expire ``forget_after_seconds`` later.

When Redis cannot be reached, the breaker fails open: calls go through unguarded and
outcomes are dropped, with one warning, and Redis is not asked again for
``retry_interval_seconds`` (so a Redis outage costs steps at most one timeout per
interval, not one per call).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis.asyncio as aioredis
import redis.exceptions

from vecron.backends.breaker.base import (
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_FORGET_AFTER_SECONDS,
    DEFAULT_PROBE_TIMEOUT_SECONDS,
    BreakerStatus,
    check_arguments,
)
from vecron.backends.ratelimit.redis import redact_redis_url
from vecron.errors import BackendUnavailable, CircuitOpen, ConfigurationError

log = logging.getLogger("vecron.breaker")

KEY_PREFIX = "vecron:breaker:"
DEFAULT_TIMEOUT_SECONDS = 1.0
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_RETRY_INTERVAL_SECONDS = 5.0
_MICROSECONDS = 1_000_000

# KEYS[1] the target's hash; ARGV: probe timeout (µs). Returns {allowed, probe,
# retry after (µs), failures, probing, the cool-down (µs) of the process that opened it}.
_ALLOW_SCRIPT = """
local key = KEYS[1]
local state = redis.call('HMGET', key, 'failures', 'opened_until', 'probe_until', 'cooldown')
if not state[2] then return {1, 0, 0, 0, 0, 0} end
local failures = tonumber(state[1] or '0')
local cooldown = tonumber(state[4] or '0')
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local opened = tonumber(state[2])
if now < opened then return {0, 0, opened - now, failures, 0, cooldown} end
local probe = tonumber(state[3] or '0')
if now < probe then return {0, 0, probe - now, failures, 1, cooldown} end
redis.call('HSET', key, 'probe_until', string.format('%.0f', now + tonumber(ARGV[1])))
return {1, 1, 0, failures, 0, cooldown}
"""

# KEYS[1] the target's hash; ARGV: probe (0/1), threshold, cool-down (µs), keep (ms).
# A failure only: a success deletes the hash without a script.
_FAILURE_SCRIPT = """
local key = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local opened = redis.call('HGET', key, 'opened_until')
local reopen = string.format('%.0f', now + tonumber(ARGV[3]))
if not opened then
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  if failures >= tonumber(ARGV[2]) then
    redis.call('HSET', key, 'opened_until', reopen, 'probe_until', '0', 'cooldown', ARGV[3])
  end
elseif ARGV[1] == '1' and now >= tonumber(opened) then
  redis.call('HINCRBY', key, 'failures', 1)
  redis.call('HSET', key, 'opened_until', reopen, 'probe_until', '0', 'cooldown', ARGV[3])
else
  return 0
end
redis.call('PEXPIRE', key, ARGV[4])
return 1
"""

# KEYS[1] the target's hash: a probe that never reached the target frees its turn.
_RELEASE_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], 'opened_until') == 1 then
  redis.call('HSET', KEYS[1], 'probe_until', '0')
end
return 0
"""

# Any Redis error: unreachable, a wrong password, out of memory, a read-only replica.
_UNREACHABLE = (redis.exceptions.RedisError, OSError)


class RedisCircuitBreaker:
    """Breakers in Redis (see the module docstring); the same defaults as
    :class:`~vecron.backends.breaker.memory.MemoryCircuitBreaker`.

    Give it a ready ``client`` (it stays open on :meth:`close`), or use
    :meth:`from_url`, which opens one that :meth:`close` closes. ``prefix`` namespaces
    the keys (tests use their own).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        probe_timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS,
        forget_after_seconds: float = DEFAULT_FORGET_AFTER_SECONDS,
        retry_interval_seconds: float = DEFAULT_RETRY_INTERVAL_SECONDS,
        prefix: str = KEY_PREFIX,
        url: str | None = None,
        owns_client: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_arguments(
            failure_threshold=failure_threshold,
            cooldown_seconds=cooldown_seconds,
            probe_timeout_seconds=probe_timeout_seconds,
            forget_after_seconds=forget_after_seconds,
        )
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        keep = max(forget_after_seconds, cooldown_seconds + probe_timeout_seconds)
        self._keep_ms = max(1, math.ceil(keep * 1000))
        self._retry_interval_seconds = retry_interval_seconds
        self._client = client
        self._prefix = prefix
        self._shown = redact_redis_url(url) if url else "Redis"
        self._owns_client = owns_client
        self._clock = clock
        self._down_until: float | None = None  # clock(); Redis is not asked until then
        self._allow = client.register_script(_ALLOW_SCRIPT)
        self._failure = client.register_script(_FAILURE_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = KEY_PREFIX,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        probe_timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS,
        forget_after_seconds: float = DEFAULT_FORGET_AFTER_SECONDS,
        retry_interval_seconds: float = DEFAULT_RETRY_INTERVAL_SECONDS,
    ) -> RedisCircuitBreaker:
        """A breaker on its own client for ``redis://[:password@]host:port/db`` (or
        ``rediss://``, ``unix://``). Nothing is contacted yet.

        Every Redis call is bounded by ``timeout_seconds`` (1 s; waiting for a pooled
        connection, connecting and each reply), since a step waits on it; the pool
        holds up to 50 connections.
        """
        check_arguments(
            failure_threshold=failure_threshold,
            cooldown_seconds=cooldown_seconds,
            probe_timeout_seconds=probe_timeout_seconds,
            forget_after_seconds=forget_after_seconds,
        )
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=DEFAULT_MAX_CONNECTIONS,
                timeout=timeout_seconds,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"Redis URL {redact_redis_url(url)} is malformed: {exc}"
            ) from None
        return cls(
            aioredis.Redis(connection_pool=pool),
            failure_threshold=failure_threshold,
            cooldown_seconds=cooldown_seconds,
            probe_timeout_seconds=probe_timeout_seconds,
            forget_after_seconds=forget_after_seconds,
            retry_interval_seconds=retry_interval_seconds,
            prefix=prefix,
            url=url,
            owns_client=True,
        )

    async def allow(self, target: str) -> bool:
        if self._skipping():
            return False
        try:
            allowed, probe, retry, failures, probing, cooldown = await self._allow(
                keys=[self._prefix + target],
                args=[round(self.probe_timeout_seconds * _MICROSECONDS)],
            )
        except _UNREACHABLE as exc:
            self._went_down(exc)
            return False
        self._came_back()
        if allowed:
            return bool(probe)
        raise CircuitOpen(
            target,
            failures=int(failures),
            retry_after_seconds=int(retry) / _MICROSECONDS,
            cooldown_seconds=int(cooldown) / _MICROSECONDS or self.cooldown_seconds,
            probing=bool(probing),
        )

    async def record(self, target: str, *, ok: bool | None, probe: bool = False) -> None:
        if self._skipping() or (ok is None and not probe):
            return
        key = self._prefix + target
        try:
            if ok:
                await self._client.delete(key)
            elif ok is None:  # the probe's turn goes to the next caller
                await self._release(keys=[key])
            else:
                await self._failure(
                    keys=[key],
                    args=[
                        1 if probe else 0,
                        self.failure_threshold,
                        round(self.cooldown_seconds * _MICROSECONDS),
                        self._keep_ms,
                    ],
                )
        except _UNREACHABLE as exc:
            self._went_down(exc)
            return
        self._came_back()

    async def states(self) -> dict[str, BreakerStatus]:
        """Every target's state, read from Redis (raises
        :class:`~vecron.errors.BackendUnavailable` when it cannot be reached)."""
        try:
            keys = [key async for key in self._client.scan_iter(match=self._prefix + "*")]
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.time()
                for key in keys:
                    pipe.hmget(key, "failures", "opened_until", "probe_until")
                replies = await pipe.execute()
        except _UNREACHABLE as exc:
            raise BackendUnavailable(f"Redis at {self._shown} is unavailable: {exc}") from None
        seconds, micros = replies[0]
        now = int(seconds) * _MICROSECONDS + int(micros)
        found: dict[str, BreakerStatus] = {}
        for key, (failures, opened, probe) in zip(keys, replies[1:], strict=True):
            if failures is None and opened is None:
                continue  # deleted between the scan and the read
            target = (key.decode() if isinstance(key, bytes) else str(key))[len(self._prefix) :]
            count = int(failures or 0)
            if opened is None:
                found[target] = BreakerStatus(state="closed", failures=count, retry_after_seconds=0)
            elif now < int(opened):
                left = (int(opened) - now) / _MICROSECONDS
                found[target] = BreakerStatus(
                    state="open", failures=count, retry_after_seconds=left
                )
            else:
                left = max(int(probe or 0) - now, 0) / _MICROSECONDS
                found[target] = BreakerStatus(
                    state="half_open", failures=count, retry_after_seconds=left
                )
        return found

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose(close_connection_pool=True)

    def describe(self) -> str:
        return f"Redis circuit breaker at {self._shown}"

    @property
    def failing_open(self) -> bool:
        """Whether Redis was unreachable lately and calls go through unguarded."""
        return self._down_until is not None

    def _skipping(self) -> bool:
        return self._down_until is not None and self._clock() < self._down_until

    def _went_down(self, error: BaseException) -> None:
        if self._down_until is None:
            reason = str(error) or type(error).__name__
            log.warning(
                "circuit breaker: Redis at %s is unavailable (%s); steps run without "
                "circuit breaking until it is back (checked every %g s)",
                self._shown,
                _without_password(reason, self._client),
                self._retry_interval_seconds,
            )
        self._down_until = self._clock() + self._retry_interval_seconds

    def _came_back(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.warning("circuit breaker: Redis at %s is reachable again", self._shown)


def _without_password(text: str, client: aioredis.Redis) -> str:
    password = client.connection_pool.connection_kwargs.get("password")
    if isinstance(password, str) and password:
        return text.replace(password, "***")
    return text
