"""The lock contract, against the in-process locks and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.support import redis_key_prefix
from vecron.backends.locks import Locks, MemoryLocks, open_locks
from vecron.backends.locks.redis import KEY_PREFIX, RedisLocks
from vecron.errors import BackendUnavailable, ConfigurationError

Opener = Callable[[], Locks]


@pytest.fixture(params=["memory", "redis"])
async def opener(request: pytest.FixtureRequest) -> AsyncIterator[Opener]:
    """Opens lock clients that share one backend, as processes would."""
    opened: list[Locks] = []
    if request.param == "memory":
        shared = MemoryLocks()

        def open_memory() -> Locks:
            return shared

        yield open_memory
        return
    url: str = request.getfixturevalue("redis_server")
    with redis_key_prefix(url, KEY_PREFIX) as prefix:

        def open_redis() -> Locks:
            locks = RedisLocks.from_url(url, prefix=prefix)
            opened.append(locks)
            return locks

        yield open_redis
        for locks in opened:
            await locks.close()


async def test_one_holder_at_a_time(opener: Opener) -> None:
    clients = [opener() for _ in range(8)]
    tokens = await asyncio.gather(*(c.acquire("fire:j1:t1", ttl_seconds=5) for c in clients))
    assert sum(token is not None for token in tokens) == 1
    # Another name is free.
    assert await clients[0].acquire("fire:j1:t2", ttl_seconds=5) is not None


async def test_acquire_many_takes_what_is_free(opener: Opener) -> None:
    first, second = opener(), opener()
    assert await first.acquire("b", ttl_seconds=5) is not None
    tokens = await second.acquire_many(["a", "b", "c"], ttl_seconds=5)
    assert [token is not None for token in tokens] == [True, False, True]
    assert await second.acquire_many([], ttl_seconds=5) == []
    assert await first.acquire_many(["a", "c"], ttl_seconds=5) == [None, None]


async def test_a_lock_expires(opener: Opener) -> None:
    locks = opener()
    assert await locks.acquire("a", ttl_seconds=0.2) is not None
    assert await locks.acquire("a", ttl_seconds=0.2) is None
    await asyncio.sleep(0.3)
    assert await locks.acquire("a", ttl_seconds=0.2) is not None


async def test_only_the_holder_releases(opener: Opener) -> None:
    first, second = opener(), opener()
    token = await first.acquire("a", ttl_seconds=0.2)
    assert token is not None
    assert not await second.release("a", "not-the-token")
    await asyncio.sleep(0.3)  # expired; now another holds it
    other = await second.acquire("a", ttl_seconds=5)
    assert other is not None
    assert not await first.release("a", token)  # too late: not the holder any more
    assert await second.acquire("a", ttl_seconds=5) is None
    assert await second.release("a", other)
    assert await first.acquire("a", ttl_seconds=5) is not None


async def test_an_unreachable_redis_gives_nobody_a_lock() -> None:
    locks = RedisLocks.from_url("redis://127.0.0.1:9/0")  # the discard port: nothing there
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: locks.acquire("a", ttl_seconds=1),
            lambda: locks.release("a", "t"),
            locks.ping,
        ]
        for call in calls:
            with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:9"):
                await call()
    finally:
        await locks.close()


def test_open_locks() -> None:
    assert isinstance(open_locks(None), MemoryLocks)
    assert isinstance(open_locks("redis://:pw@127.0.0.1:6379/0"), RedisLocks)
    assert "pw" not in open_locks("redis://:pw@127.0.0.1:6379/0").describe()
    with pytest.raises(ConfigurationError, match="unsupported Redis URL"):
        open_locks("http://127.0.0.1:6379")
