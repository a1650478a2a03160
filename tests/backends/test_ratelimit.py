"""The rate-limit contract, against the in-process limiter and Redis.

The memory limiter runs on a clock that moves only when told to; Redis keeps its own
time, so there ``advance`` sleeps and timings are checked within ``slack`` seconds.
Each Redis test has a key prefix of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from tests.support import redis_key_prefix
from vecron.backends.ratelimit import (
    MemoryRateLimiter,
    RateDecision,
    RateLimiter,
    RedisRateLimiter,
    open_rate_limiter,
)
from vecron.backends.ratelimit import redis as redis_ratelimit
from vecron.backends.ratelimit.redis import KEY_PREFIX, redact_redis_url
from vecron.errors import BackendUnavailable, ConfigurationError

REDIS_URL = os.environ.get("VECRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    limiter: RateLimiter
    advance: Callable[[float], Awaitable[None]]
    slack: float  # how far measured timings may be off (0 on the fake clock)

    async def hits(self, key: str, count: int, limit: int, window: float = 1.0) -> list[bool]:
        return [(await self.limiter.hit(key, limit, window)).allowed for _ in range(count)]


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted afterwards."""
    with redis_key_prefix(redis_server, KEY_PREFIX) as prefix:
        yield prefix


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()

        async def tick(seconds: float) -> None:
            clock.now += seconds

        limiter: RateLimiter = MemoryRateLimiter(clock=clock)
        opened = Harness(limiter=limiter, advance=tick, slack=1e-9)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        limiter = RedisRateLimiter.from_url(request.getfixturevalue("redis_server"), prefix=prefix)

        async def sleep(seconds: float) -> None:
            # A timer may fire a hair early on the loop's clock; Redis has its own.
            await asyncio.sleep(seconds + 0.002)

        opened = Harness(limiter=limiter, advance=sleep, slack=0.12)
    try:
        yield opened
    finally:
        await opened.limiter.close()


async def test_the_limit_is_allowed_then_refused(harness: Harness) -> None:
    decisions = [await harness.limiter.hit("k", 3, 1.0) for _ in range(5)]
    assert [(d.allowed, d.remaining, d.retry_after) for d in decisions[:3]] == [
        (True, 2, 0.0),
        (True, 1, 0.0),
        (True, 0, 0.0),
    ]
    for refused in decisions[3:]:
        assert not refused.allowed
        assert refused.remaining == 0
        assert 0 < refused.retry_after <= 1.0


async def test_retry_after_is_when_the_oldest_hit_leaves_the_window(harness: Harness) -> None:
    limiter, slack = harness.limiter, harness.slack
    assert (await limiter.hit("k", 3, 1.0)).allowed  # A at 0
    await harness.advance(0.4)
    assert await harness.hits("k", 2, 3) == [True, True]  # B, C at 0.4
    refused = await limiter.hit("k", 3, 1.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.6, abs=slack)  # A leaves at 1.0
    await harness.advance(refused.retry_after)
    assert (await limiter.hit("k", 3, 1.0)).allowed  # D at 1.0, in A's place
    again = await limiter.hit("k", 3, 1.0)
    assert not again.allowed
    assert again.retry_after == pytest.approx(0.4, abs=slack)  # B leaves at 1.4


async def test_the_window_slides(harness: Harness) -> None:
    """Unlike a fixed window, no boundary lets a second burst in early."""
    assert await harness.hits("k", 1, 2) == [True]  # at 0
    await harness.advance(0.5)
    assert await harness.hits("k", 2, 2) == [True, False]  # at 0.5
    await harness.advance(0.55)
    assert await harness.hits("k", 2, 2) == [True, False]  # at 1.05: only the first left
    await harness.advance(0.5)
    assert await harness.hits("k", 2, 2) == [True, False]  # at 1.55: the second left


async def test_refused_hits_do_not_extend_the_lockout(harness: Harness) -> None:
    assert await harness.hits("k", 2, 2) == [True, True]
    for _ in range(9):  # a flood for most of the window
        await harness.advance(0.1)
        assert await harness.hits("k", 5, 2) == [False] * 5
    await harness.advance(0.1 + harness.slack)
    assert await harness.hits("k", 3, 2) == [True, True, False]


async def test_keys_are_independent(harness: Harness) -> None:
    assert await harness.hits("a", 3, 2) == [True, True, False]
    assert await harness.hits("b", 3, 2) == [True, True, False]
    assert await harness.hits("a:b", 1, 1) == [True]
    decision = await harness.limiter.hit("c", 1, 1.0)
    assert (decision.allowed, decision.remaining) == (True, 0)


async def test_concurrent_hits_admit_exactly_the_limit(harness: Harness) -> None:
    decisions = await asyncio.gather(*(harness.limiter.hit("k", 25, 5.0) for _ in range(200)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 25
    assert sorted(d.remaining for d in allowed) == list(range(25))
    assert all(d.remaining == 0 and d.retry_after > 0 for d in decisions if not d.allowed)


async def test_a_key_hit_with_a_smaller_limit_waits_for_enough_hits_to_leave(
    harness: Harness,
) -> None:
    for _ in range(3):  # at 0, 0.2, 0.4
        assert (await harness.limiter.hit("k", 5, 1.0)).allowed
        await harness.advance(0.2)
    assert (await harness.limiter.hit("k", 5, 1.0)).remaining == 1  # at 0.6
    refused = await harness.limiter.hit("k", 2, 1.0)
    assert not refused.allowed
    # Four hits, a limit of two: three must leave; the third (at 0.4) does at 1.4.
    assert refused.retry_after == pytest.approx(0.8, abs=harness.slack)


async def test_the_default_window_is_a_minute(harness: Harness) -> None:
    assert (await harness.limiter.hit("k", 1)).allowed
    refused = await harness.limiter.hit("k", 1)
    assert not refused.allowed
    assert 60 - harness.slack <= refused.retry_after <= 60


@pytest.mark.parametrize(("limit", "window"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -1.0)])
async def test_meaningless_limits_are_refused(harness: Harness, limit: int, window: float) -> None:
    with pytest.raises(ValueError, match=r"rate.limit"):
        await harness.limiter.hit("k", limit, window)
    with pytest.raises(ValueError, match="positive"):
        await harness.limiter.hit("k", 1, math.nan)


async def test_it_describes_itself_and_answers_a_ping(harness: Harness) -> None:
    await harness.limiter.ping()
    assert "rate limit" in harness.limiter.describe()
    assert isinstance(harness.limiter, RateLimiter)


# --- the in-process limiter ----------------------------------------------------------


@given(
    steps=st.lists(
        st.tuples(st.integers(0, 400), st.sampled_from("abc")),  # (ms to wait, key)
        max_size=120,
    ),
    limits=st.fixed_dictionaries({k: st.integers(1, 4) for k in "abc"}),
)
async def test_memory_matches_the_definition_of_a_sliding_window(
    steps: list[tuple[int, str]], limits: dict[str, int]
) -> None:
    """Each decision is what the sliding-window log defines, and no window of one
    second ever holds more than ``limit`` allowed hits of a key."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, sweep_interval_seconds=0.7)
    allowed: dict[str, list[float]] = {k: [] for k in "abc"}
    for wait_ms, key in steps:
        clock.now += wait_ms / 1000
        now, limit = clock.now, limits[key]
        inside = [t for t in allowed[key] if t > now - 1.0]
        decision = await limiter.hit(key, limit, 1.0)
        if len(inside) < limit:
            assert decision == RateDecision(
                allowed=True, remaining=limit - len(inside) - 1, retry_after=0.0
            )
            allowed[key].append(now)
        else:
            assert not decision.allowed
            assert decision.retry_after == pytest.approx(inside[len(inside) - limit] + 1 - now)
    for key, times in allowed.items():
        for t in times:
            assert sum(1 for u in times if t - 1.0 < u <= t) <= limits[key]


async def test_memory_forgets_keys_whose_window_has_passed() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, sweep_interval_seconds=60)
    for n in range(1000):
        await limiter.hit(f"k{n}", 5, 1.0)
    await limiter.hit("long", 5, 300.0)
    assert limiter.key_count == 1001
    clock.now += 30
    await limiter.hit("k0", 5, 1.0)
    assert limiter.key_count == 1001  # no sweep before the interval
    clock.now += 31
    await limiter.hit("new", 5, 1.0)
    assert limiter.key_count == 2  # "long" is still in its window; "new" just came
    await limiter.close()
    assert limiter.key_count == 0


# --- Redis -------------------------------------------------------------------------


async def test_redis_keeps_one_prefixed_sorted_set_that_expires(redis_prefix: str) -> None:
    limiter = RedisRateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    async with aioredis.Redis.from_url(REDIS_URL) as client:
        try:
            await limiter.hit("job-1", 3, 0.5)
            assert [k async for k in client.scan_iter(match=redis_prefix + "*")] == [
                f"{redis_prefix}job-1".encode()
            ]
            assert await client.type(f"{redis_prefix}job-1") == b"zset"
            assert 0 < await client.pttl(f"{redis_prefix}job-1") <= 500
            await asyncio.sleep(0.6)
            assert await client.exists(f"{redis_prefix}job-1") == 0
        finally:
            await limiter.close()
    assert KEY_PREFIX == "vecron:ratelimit:"


async def test_redis_limits_are_shared_between_processes(redis_prefix: str) -> None:
    limiters = [RedisRateLimiter.from_url(REDIS_URL, prefix=redis_prefix) for _ in range(4)]
    try:
        decisions = await asyncio.gather(
            *(limiters[n % 4].hit("shared", 10, 5.0) for n in range(120))
        )
        assert sum(d.allowed for d in decisions) == 10
    finally:
        for limiter in limiters:
            await limiter.close()


async def test_redis_survives_a_script_cache_flush(redis_prefix: str) -> None:
    """After a Redis restart the script is gone; the limiter loads it again."""
    limiter = RedisRateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert (await limiter.hit("k", 2, 1.0)).allowed
        async with aioredis.Redis.from_url(REDIS_URL) as client:
            await client.script_flush()
        assert (await limiter.hit("k", 2, 1.0)).allowed
        assert not (await limiter.hit("k", 2, 1.0)).allowed
    finally:
        await limiter.close()


async def test_redis_refusals_are_remembered_until_retry_after(redis_prefix: str) -> None:
    """A flood of refused hits costs no round trip to Redis (and stays exact)."""
    limiter = RedisRateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert (await limiter.hit("k", 1, 0.5)).allowed
        refused = await limiter.hit("k", 1, 0.5)
        assert not refused.allowed
        async with aioredis.Redis.from_url(REDIS_URL) as client:
            await client.delete(f"{redis_prefix}k")  # only a remembered refusal says no now
        again = await limiter.hit("k", 1, 0.5)
        assert not again.allowed
        assert 0 < again.retry_after <= refused.retry_after
        assert (await limiter.hit("k", 1, 1.0)).allowed  # another window asks Redis
        assert (await limiter.hit("k", 2, 0.5)).allowed  # so does another limit
        recorded = time.monotonic()  # that hit is in Redis's window until then + 0.5 s
        # Past both the remembered refusal (it ends before) and that hit's window, however
        # slow the round trips above were (a loaded machine).
        await asyncio.sleep(max(0.0, recorded + 0.5 - time.monotonic()) + 0.1)
        assert (await limiter.hit("k", 1, 0.5)).allowed
    finally:
        await limiter.close()


async def test_redis_remembers_a_bounded_number_of_refusals(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_ratelimit, "MAX_REMEMBERED_REFUSALS", 3)
    clock = FakeClock()
    async with aioredis.Redis.from_url(REDIS_URL) as client:
        limiter = RedisRateLimiter(client, prefix=redis_prefix, clock=clock)
        for n in range(5):
            await limiter.hit(f"k{n}", 1, 60.0)
            assert not (await limiter.hit(f"k{n}", 1, 60.0)).allowed
            assert limiter.remembered_refusals == min(n + 1, 3)
        clock.now += 61  # every remembered refusal has run out: the next one sweeps
        await limiter.hit("k9", 1, 60.0)
        assert not (await limiter.hit("k9", 1, 60.0)).allowed
        assert limiter.remembered_refusals == 1


async def test_a_client_it_was_handed_stays_open(redis_prefix: str) -> None:
    async with aioredis.Redis.from_url(REDIS_URL) as client:
        limiter = RedisRateLimiter(client, prefix=redis_prefix)
        assert (await limiter.hit("k", 1, 1.0)).allowed
        await limiter.close()
        assert await client.ping()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_unreachable_redis_is_reported_without_its_password() -> None:
    port = closed_port()
    url = f"redis://vecron:hunter2-pw@127.0.0.1:{port}/3?password=query-pw"
    limiter = open_rate_limiter(url)
    try:
        for attempt in (limiter.hit("k", 1, 1.0), limiter.ping()):
            with pytest.raises(BackendUnavailable) as caught:
                await attempt
            message = str(caught.value)
            assert f"redis://vecron@127.0.0.1:{port}/3" in message
            assert "hunter2" not in message
            assert "query-pw" not in message
        assert "hunter2" not in limiter.describe()
    finally:
        await limiter.close()


async def test_a_wrong_password_is_reported_without_it(redis_server: str) -> None:
    host = redis_server.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    limiter = open_rate_limiter(f"redis://nobody-here:hunter2-pw@{host}/0")
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await limiter.hit("k", 1, 1.0)
        assert "hunter2" not in str(caught.value)
        assert "nobody-here@" in str(caught.value)
    finally:
        await limiter.close()


async def test_open_rate_limiter_picks_by_url() -> None:
    for url in (None, ""):
        limiter = open_rate_limiter(url)
        assert isinstance(limiter, MemoryRateLimiter)
        await limiter.close()
    limiter = open_rate_limiter("redis://127.0.0.1:6379/0")
    assert isinstance(limiter, RedisRateLimiter)
    await limiter.close()
    with pytest.raises(ConfigurationError, match="unsupported Redis URL scheme 'http'"):
        open_rate_limiter("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match="malformed") as caught:
        open_rate_limiter("redis://:hunter2@127.0.0.1:notaport/0")
    assert "hunter2" not in str(caught.value)


def test_redis_urls_are_shown_without_secrets() -> None:
    assert redact_redis_url("redis://:pw@h:6379/0") == "redis://h:6379/0"
    assert redact_redis_url("rediss://u:pw@h:6380/1?password=x") == "rediss://u@h:6380/1"
    assert redact_redis_url("unix:///run/redis.sock?db=2") == "unix:///run/redis.sock"
