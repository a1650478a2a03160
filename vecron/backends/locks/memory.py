"""Locks inside one process: the embedded twin of the Redis locks."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable


class MemoryLocks:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}

    def describe(self) -> str:
        return "in-process"

    async def acquire(self, name: str, *, ttl_seconds: float) -> str | None:
        now = self._clock()
        held = self._held.get(name)
        if held is not None and held[1] > now:
            return None
        if len(self._held) > 10_000:  # drop the expired ones now and then
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
        token = secrets.token_hex(8)
        self._held[name] = (token, now + ttl_seconds)
        return token

    async def acquire_many(self, names: list[str], *, ttl_seconds: float) -> list[str | None]:
        return [await self.acquire(name, ttl_seconds=ttl_seconds) for name in names]

    async def release(self, name: str, token: str) -> bool:
        held = self._held.get(name)
        if held is None or held[0] != token or held[1] <= self._clock():
            return False
        del self._held[name]
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._held.clear()
