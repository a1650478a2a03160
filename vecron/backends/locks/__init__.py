"""The lock role: :class:`Locks` (``base.py``) and its implementations.

:func:`open_locks` picks one from ``VECRON_REDIS_URL``: none means the in-process
:class:`MemoryLocks` (embedded mode); a Redis URL means :class:`RedisLocks`.
"""

from __future__ import annotations

from vecron.backends.locks.base import Locks
from vecron.backends.locks.memory import MemoryLocks
from vecron.backends.ratelimit import REDIS_SCHEMES
from vecron.errors import ConfigurationError

__all__ = ["Locks", "MemoryLocks", "open_locks"]


def open_locks(redis_url: str | None) -> Locks:
    """The locks for ``redis_url`` (``Settings.redis_url``); close them when done."""
    if not redis_url:
        return MemoryLocks()
    from urllib.parse import urlsplit

    if urlsplit(redis_url).scheme.lower() not in REDIS_SCHEMES:
        raise ConfigurationError(
            "unsupported Redis URL scheme: use redis://[:PASSWORD@]HOST:PORT/DB, "
            "rediss://… or unix:///path"
        )
    from vecron.backends.locks.redis import RedisLocks

    return RedisLocks.from_url(redis_url)
