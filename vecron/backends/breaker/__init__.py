"""The circuit-breaker role: :class:`CircuitBreaker` (``base.py``) and its implementations.

:func:`open_breaker` picks one from ``VECRON_REDIS_URL``: none means the in-process
:class:`MemoryCircuitBreaker` (embedded mode, one worker process); ``redis://``,
``rediss://`` or ``unix://`` means :class:`RedisCircuitBreaker`, shared by every worker
on that server. The Redis client takes a tenth of a second to import, so it is loaded
only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vecron.backends.breaker.base import (
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_FORGET_AFTER_SECONDS,
    DEFAULT_PROBE_TIMEOUT_SECONDS,
    BreakerStatus,
    CircuitBreaker,
    guarded,
    network_target,
)
from vecron.backends.breaker.memory import MemoryCircuitBreaker
from vecron.errors import ConfigurationError

if TYPE_CHECKING:
    from vecron.backends.breaker.redis import RedisCircuitBreaker

__all__ = [
    "BreakerStatus",
    "CircuitBreaker",
    "MemoryCircuitBreaker",
    "RedisCircuitBreaker",
    "guarded",
    "network_target",
    "open_breaker",
]

REDIS_SCHEMES = ("redis", "rediss", "unix")


def open_breaker(
    redis_url: str | None,
    *,
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
    probe_timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS,
    forget_after_seconds: float = DEFAULT_FORGET_AFTER_SECONDS,
) -> CircuitBreaker:
    """The circuit breaker for ``redis_url`` (``Settings.redis_url``); close it when done.

    The thresholds go to the constructor (see :mod:`.base` for what they mean).
    Raises :class:`~vecron.errors.ConfigurationError`
    for a URL that is not Redis's. Nothing is contacted yet, and an unreachable server
    never stops a step: the Redis breaker then fails open with a warning.
    """
    if not redis_url:
        return MemoryCircuitBreaker(
            failure_threshold=failure_threshold,
            cooldown_seconds=cooldown_seconds,
            probe_timeout_seconds=probe_timeout_seconds,
            forget_after_seconds=forget_after_seconds,
        )
    scheme = urlsplit(redis_url).scheme.lower()
    if scheme not in REDIS_SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL scheme {scheme or '(none)'!r}: "
            "use redis://[:PASSWORD@]HOST:PORT/DB, rediss://… or unix:///path"
        )
    from vecron.backends.breaker.redis import RedisCircuitBreaker

    return RedisCircuitBreaker.from_url(
        redis_url,
        failure_threshold=failure_threshold,
        cooldown_seconds=cooldown_seconds,
        probe_timeout_seconds=probe_timeout_seconds,
        forget_after_seconds=forget_after_seconds,
    )


def __getattr__(name: str) -> object:
    if name == "RedisCircuitBreaker":
        from vecron.backends.breaker.redis import RedisCircuitBreaker

        return RedisCircuitBreaker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
