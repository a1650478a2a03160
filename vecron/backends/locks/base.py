"""The lock role: short leases on names, so that one process at a time does a thing.

The scheduler takes one lock per (job, fire time) before it fires, so that however
many schedulers run, one of them enqueues each fire; the database's compare-and-set
on ``next_run_at`` stays the last word, the lock keeps the others from even trying.

Guarantees every implementation gives (tests/backends/test_locks.py checks them):

- ``acquire`` is atomic: of any number of callers, in any number of processes that
  share the backend, exactly one gets True for a name until the lock expires after
  ``ttl_seconds`` or its holder releases it.
- ``release`` frees a lock only for the holder that took it (its token), so a holder
  whose lock expired and was taken by another cannot free the other's.
- An unreachable backend raises :class:`~vecron.errors.BackendUnavailable`, never
  answers True: without the lock service nobody gets a lock.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Locks(Protocol):
    async def acquire(self, name: str, *, ttl_seconds: float) -> str | None:
        """Take the lock ``name`` for ``ttl_seconds``; its token, or None when taken."""
        ...

    async def acquire_many(self, names: list[str], *, ttl_seconds: float) -> list[str | None]:
        """:meth:`acquire` for each name, in one round trip where the backend can."""
        ...

    async def release(self, name: str, token: str) -> bool:
        """Free ``name`` if ``token`` still holds it; whether it did."""
        ...

    async def ping(self) -> None:
        """Raise :class:`~vecron.errors.BackendUnavailable` when the backend is down."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> str: ...
