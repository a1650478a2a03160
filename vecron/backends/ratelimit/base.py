"""The rate-limit role: how many hits a key may take in a sliding window.

Every implementation keeps an exact sliding-window log: a hit at time ``t`` is
allowed when fewer than ``limit`` allowed hits of the same key fall in the window
``(t - window_seconds, t]``. There is no fixed minute boundary to burst across.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True, kw_only=True)
class RateDecision:
    """The answer to one hit.

    ``remaining`` is how many more hits the window admits right after this one (0 when
    refused). ``retry_after`` is in seconds: 0 when allowed; when refused, the time
    until the oldest hit in the window leaves it and a slot frees (always > 0). It is
    exact for the next hit only: a competing client may take the slot first.
    """

    allowed: bool
    remaining: int
    retry_after: float


@runtime_checkable
class RateLimiter(Protocol):
    """Sliding-window rate limits per key (a job's webhook, a token…).

    Guarantees every implementation gives (tests/backends/test_ratelimit.py checks them):

    - Exactness: of any set of hits of one key, however concurrent, at most ``limit``
      are allowed in any window of ``window_seconds``; a hit is refused only when
      ``limit`` allowed hits are already in its window.
    - Refused hits are not recorded: a flood over the limit does not extend the
      lockout, and a well-behaved client gets in again ``retry_after`` seconds later.
    - Keys are independent, and a key's state vanishes once its window has passed
      (memory is bounded by the keys hit within one window).
    - ``hit`` raises :class:`ValueError` for ``limit < 1`` or ``window_seconds <= 0``,
      and :class:`~vecron.errors.BackendUnavailable` when its server cannot be reached.
    """

    async def hit(self, key: str, limit: int, window_seconds: float = 60.0) -> RateDecision:
        """Count one hit of ``key`` if the window admits it, and say whether it did."""
        ...

    async def ping(self) -> None:
        """Check that the limits can be reached (for ``/readyz``); raise if not."""
        ...

    async def close(self) -> None:
        """Release what the limiter opened (not a client it was handed)."""
        ...

    def describe(self) -> str:
        """Where the limits live, for logs and ``/readyz`` (no credentials)."""
        ...


def check_arguments(limit: int, window_seconds: float) -> None:
    """Refuse a limit or window that cannot mean anything."""
    if limit < 1:
        raise ValueError(f"a rate limit must admit at least 1 hit, not {limit}")
    if not window_seconds > 0:
        raise ValueError(f"a rate-limit window must be positive, not {window_seconds} s")
