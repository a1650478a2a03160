"""The rate-limit role: :class:`RateLimiter` (``base.py``) and its implementations.

:func:`open_rate_limiter` picks one from ``VECRON_REDIS_URL``: none means the
in-process :class:`MemoryRateLimiter` (embedded mode); ``redis://``, ``rediss://`` or
``unix://`` means :class:`RedisRateLimiter`, shared by every process on that server.
The Redis client takes a tenth of a second to import, so it is loaded only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vecron.backends.ratelimit.base import RateDecision, RateLimiter
from vecron.backends.ratelimit.memory import MemoryRateLimiter
from vecron.errors import ConfigurationError

if TYPE_CHECKING:
    from vecron.backends.ratelimit.redis import RedisRateLimiter

__all__ = [
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "open_rate_limiter",
]

REDIS_SCHEMES = ("redis", "rediss", "unix")


def open_rate_limiter(redis_url: str | None) -> RateLimiter:
    """The rate limiter for ``redis_url`` (``Settings.redis_url``); close it when done.

    Raises :class:`~vecron.errors.ConfigurationError` for a URL that is not Redis's.
    Nothing is contacted yet: an unreachable server shows on the first hit (or
    ``ping``) as :class:`~vecron.errors.BackendUnavailable`.
    """
    if not redis_url:
        return MemoryRateLimiter()
    scheme = urlsplit(redis_url).scheme.lower()
    if scheme not in REDIS_SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL scheme {scheme or '(none)'!r}: "
            "use redis://[:PASSWORD@]HOST:PORT/DB, rediss://… or unix:///path"
        )
    from vecron.backends.ratelimit.redis import RedisRateLimiter

    return RedisRateLimiter.from_url(redis_url)


def __getattr__(name: str) -> object:
    if name == "RedisRateLimiter":
        from vecron.backends.ratelimit.redis import RedisRateLimiter

        return RedisRateLimiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
