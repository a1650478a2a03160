"""Locks in Redis, shared by every process on the same server.

``SET name token NX PX ttl`` takes a lock; a Lua script frees it only for its token.
The keys are ``vecron:lock:<name>``.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis
import redis.exceptions

from vecron.backends.ratelimit.redis import redact_redis_url
from vecron.errors import BackendUnavailable

KEY_PREFIX = "vecron:lock:"
TIMEOUT_SECONDS = 2.0
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLocks:
    def __init__(self, client: aioredis.Redis, *, url: str, prefix: str = KEY_PREFIX) -> None:
        self._client = client
        self._url = url
        self._prefix = prefix
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = KEY_PREFIX) -> RedisLocks:
        client = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        return cls(client, url=url, prefix=prefix)

    def describe(self) -> str:
        return redact_redis_url(self._url)

    async def acquire(self, name: str, *, ttl_seconds: float) -> str | None:
        (token,) = await self.acquire_many([name], ttl_seconds=ttl_seconds)
        return token

    async def acquire_many(self, names: list[str], *, ttl_seconds: float) -> list[str | None]:
        if not names:
            return []
        tokens = [secrets.token_hex(8) for _ in names]
        ttl = max(1, round(ttl_seconds * 1000))
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                for name, token in zip(names, tokens, strict=True):
                    pipeline.set(self._prefix + name, token, nx=True, px=ttl)
                taken = await pipeline.execute()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise BackendUnavailable(f"Redis at {self.describe()}: {exc}") from None
        return [token if ok else None for token, ok in zip(tokens, taken, strict=True)]

    async def release(self, name: str, token: str) -> bool:
        try:
            freed = await self._release(keys=[self._prefix + name], args=[token])
        except (redis.exceptions.RedisError, OSError) as exc:
            raise BackendUnavailable(f"Redis at {self.describe()}: {exc}") from None
        return bool(freed)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise BackendUnavailable(f"Redis at {self.describe()}: {exc}") from None

    async def close(self) -> None:
        await self._client.aclose()
