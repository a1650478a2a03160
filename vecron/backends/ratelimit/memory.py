"""The in-process rate limiter: the embedded twin of :class:`RedisRateLimiter`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from vecron.backends.ratelimit.base import RateDecision, check_arguments

MIN_RETRY_AFTER_SECONDS = 1e-6  # a refused hit always says to wait a little


@dataclass(slots=True)
class _Log:
    window_seconds: float
    hits: deque[float] = field(default_factory=deque)  # allowed hits, oldest first


class MemoryRateLimiter:
    """Sliding-window logs in one process, for one event loop.

    ``hit`` never awaits, so concurrent hits on one loop are serialised and exact. A
    key's log holds at most ``limit`` times; logs whose newest hit has left its window
    are dropped in a sweep at most every ``sweep_interval_seconds``, so memory is
    bounded by the keys hit within one window plus one interval.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_seconds: float = 60.0,
    ) -> None:
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._sweep_interval_seconds = sweep_interval_seconds
        self._next_sweep = clock() + sweep_interval_seconds

    async def hit(self, key: str, limit: int, window_seconds: float = 60.0) -> RateDecision:
        check_arguments(limit, window_seconds)
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log(window_seconds)
        log.window_seconds = window_seconds
        hits = log.hits
        horizon = now - window_seconds
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) < limit:
            hits.append(now)
            return RateDecision(allowed=True, remaining=limit - len(hits), retry_after=0.0)
        # The hit that must leave for a slot to free (the oldest, unless the limit shrank).
        edge = hits[len(hits) - limit]
        retry_after = max(edge + window_seconds - now, MIN_RETRY_AFTER_SECONDS)
        return RateDecision(allowed=False, remaining=0, retry_after=retry_after)

    @property
    def key_count(self) -> int:
        """How many keys have a log in memory (stale ones included until a sweep)."""
        return len(self._logs)

    def _sweep(self, now: float) -> None:
        stale = [
            key
            for key, log in self._logs.items()
            if not log.hits or log.hits[-1] <= now - log.window_seconds
        ]
        for key in stale:
            del self._logs[key]
        self._next_sweep = now + self._sweep_interval_seconds

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._logs.clear()

    def describe(self) -> str:
        return "in-process rate limiter"
