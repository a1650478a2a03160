"""The circuit-breaker contract, against the in-process breaker and Redis.

The memory breaker runs on a clock that moves only when told to; Redis keeps its own
time, so there ``advance`` sleeps, and the cool-downs are short. Each Redis test has a
key prefix of its own, deleted afterwards; ``peer`` is a second breaker on the same
state (another process, for Redis; the same object, in memory).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from tests.support import redis_key_prefix
from vecron.backends.breaker import (
    CircuitBreaker,
    MemoryCircuitBreaker,
    RedisCircuitBreaker,
    guarded,
    network_target,
    open_breaker,
)
from vecron.backends.breaker.redis import KEY_PREFIX
from vecron.errors import BackendUnavailable, CircuitOpen, ConfigurationError

REDIS_URL = os.environ.get("VECRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
THRESHOLD = 3
COOLDOWN = 0.6
PROBE_TIMEOUT = 0.9
FORGET_AFTER = 1.6
TARGET = "http://10.0.0.1:80"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    breaker: CircuitBreaker
    peer: CircuitBreaker  # shares the state of ``breaker``
    advance: Callable[[float], Awaitable[None]]
    slack: float  # how far measured timings may be off (0 on the fake clock)

    async def fail(self, target: str = TARGET, times: int = 1) -> None:
        for _ in range(times):
            await self.breaker.allow(target)
            await self.breaker.record(target, ok=False)

    async def open(self, target: str = TARGET) -> None:
        await self.fail(target, THRESHOLD)


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

        breaker = MemoryCircuitBreaker(
            failure_threshold=THRESHOLD,
            cooldown_seconds=COOLDOWN,
            probe_timeout_seconds=PROBE_TIMEOUT,
            forget_after_seconds=FORGET_AFTER,
            clock=clock,
        )
        opened = Harness(breaker=breaker, peer=breaker, advance=tick, slack=1e-9)
    else:
        url = request.getfixturevalue("redis_server")
        prefix = request.getfixturevalue("redis_prefix")
        breakers = [
            RedisCircuitBreaker.from_url(
                url,
                prefix=prefix,
                failure_threshold=THRESHOLD,
                cooldown_seconds=COOLDOWN,
                probe_timeout_seconds=PROBE_TIMEOUT,
                forget_after_seconds=FORGET_AFTER,
            )
            for _ in range(2)
        ]

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds + 0.01)

        opened = Harness(breaker=breakers[0], peer=breakers[1], advance=sleep, slack=0.2)
    try:
        yield opened
    finally:
        await opened.breaker.close()
        if opened.peer is not opened.breaker:
            await opened.peer.close()


async def refused(breaker: CircuitBreaker, target: str = TARGET) -> CircuitOpen:
    with pytest.raises(CircuitOpen) as caught:
        await breaker.allow(target)
    return caught.value


# --- closed and open ---------------------------------------------------------------


async def test_a_closed_breaker_lets_calls_through(harness: Harness) -> None:
    assert await harness.breaker.allow(TARGET) is False
    await harness.breaker.record(TARGET, ok=True)
    assert await harness.breaker.states() == {}


async def test_the_threshold_of_consecutive_failures_opens_it(harness: Harness) -> None:
    await harness.fail(times=THRESHOLD - 1)
    assert await harness.breaker.allow(TARGET) is False  # one short: still closed
    await harness.breaker.record(TARGET, ok=False)
    error = await refused(harness.breaker)
    assert error.target == TARGET
    assert error.failures == THRESHOLD
    assert error.cooldown_seconds == COOLDOWN
    assert 0 < error.retry_after_seconds <= COOLDOWN
    assert not error.probing
    assert TARGET in str(error)
    assert f"{COOLDOWN:g} s cool-down" in str(error)
    assert f"{THRESHOLD} consecutive failures" in str(error)


async def test_a_success_resets_the_count(harness: Harness) -> None:
    await harness.fail(times=THRESHOLD - 1)
    await harness.breaker.record(TARGET, ok=True)
    await harness.fail(times=THRESHOLD - 1)
    assert await harness.breaker.allow(TARGET) is False
    statuses = await harness.breaker.states()
    assert statuses[TARGET].state == "closed"
    assert statuses[TARGET].failures == THRESHOLD - 1


async def test_targets_are_independent(harness: Harness) -> None:
    other = "postgresql://app@db:5432/sales"
    await harness.open()
    await refused(harness.breaker)
    assert await harness.breaker.allow(other) is False
    await harness.fail(other, THRESHOLD - 1)
    assert await harness.breaker.allow(other) is False


async def test_it_stays_open_for_the_cool_down(harness: Harness) -> None:
    await harness.open()
    first = await refused(harness.breaker)
    await harness.advance(COOLDOWN / 2)
    second = await refused(harness.breaker)
    assert second.retry_after_seconds < first.retry_after_seconds
    assert second.retry_after_seconds == pytest.approx(COOLDOWN / 2, abs=harness.slack)


async def test_a_late_failure_while_open_changes_nothing(harness: Harness) -> None:
    await harness.open()
    before = await refused(harness.breaker)
    await harness.breaker.record(TARGET, ok=False)  # a call that started before it opened
    after = await refused(harness.breaker)
    assert after.failures == before.failures
    assert after.retry_after_seconds <= before.retry_after_seconds


# --- half-open -----------------------------------------------------------------------


async def test_after_the_cool_down_exactly_one_caller_probes(harness: Harness) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)

    async def attempt(breaker: CircuitBreaker) -> bool | CircuitOpen:
        try:
            return await breaker.allow(TARGET)
        except CircuitOpen as exc:
            return exc

    results = await asyncio.gather(
        *(attempt(harness.breaker if i % 2 else harness.peer) for i in range(20))
    )
    assert results.count(True) == 1
    refusals = [r for r in results if isinstance(r, CircuitOpen)]
    assert len(refusals) == 19
    assert all(r.probing for r in refusals)
    assert all(0 < r.retry_after_seconds <= PROBE_TIMEOUT for r in refusals)
    assert "half-open" in str(refusals[0])
    assert (await harness.breaker.states())[TARGET].state == "half_open"


async def test_a_successful_probe_closes_it(harness: Harness) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)
    assert await harness.breaker.allow(TARGET) is True
    await harness.breaker.record(TARGET, ok=True, probe=True)
    assert await harness.peer.allow(TARGET) is False
    assert await harness.breaker.states() == {}
    # closed for good: it takes the whole threshold again to open it
    await harness.fail(times=THRESHOLD - 1)
    assert await harness.breaker.allow(TARGET) is False


async def test_a_failed_probe_opens_it_for_another_cool_down(harness: Harness) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)
    assert await harness.breaker.allow(TARGET) is True
    await harness.breaker.record(TARGET, ok=False, probe=True)
    error = await refused(harness.peer)
    assert not error.probing
    assert error.failures == THRESHOLD + 1
    assert error.retry_after_seconds == pytest.approx(COOLDOWN, abs=harness.slack)
    await harness.advance(COOLDOWN)
    assert await harness.peer.allow(TARGET) is True


async def test_a_probe_that_never_reports_is_freed_after_its_timeout(harness: Harness) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)
    assert await harness.breaker.allow(TARGET) is True  # and its caller vanishes
    await refused(harness.peer)
    await harness.advance(PROBE_TIMEOUT)
    assert await harness.peer.allow(TARGET) is True


async def test_a_non_probe_failure_while_half_open_changes_nothing(harness: Harness) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)
    assert await harness.breaker.allow(TARGET) is True
    await harness.peer.record(TARGET, ok=False)  # an old call, not the probe
    status = (await harness.breaker.states())[TARGET]
    assert status.state == "half_open"
    assert status.failures == THRESHOLD


async def test_a_call_that_never_reached_the_target_changes_no_count(harness: Harness) -> None:
    await harness.fail(times=THRESHOLD - 1)
    await harness.breaker.allow(TARGET)
    await harness.breaker.record(TARGET, ok=None)  # e.g. its private key did not load
    assert (await harness.breaker.states())[TARGET].failures == THRESHOLD - 1
    await harness.fail()
    await refused(harness.breaker)


async def test_a_probe_that_never_reached_the_target_gives_its_turn_back(
    harness: Harness,
) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)
    assert await harness.breaker.allow(TARGET) is True
    await refused(harness.peer)
    await harness.breaker.record(TARGET, ok=None, probe=True)
    assert await harness.peer.allow(TARGET) is True  # at once, not after the timeout
    status = (await harness.breaker.states())[TARGET]
    assert (status.state, status.failures) == ("half_open", THRESHOLD)


# --- sharing, states, memory ---------------------------------------------------------


async def test_a_refusal_names_the_cool_down_that_opened_it(
    redis_server: str, redis_prefix: str
) -> None:
    short, default = (
        RedisCircuitBreaker.from_url(redis_server, prefix=redis_prefix, **options)
        for options in ({"failure_threshold": 1, "cooldown_seconds": 7.0}, {})
    )
    try:
        await short.record(TARGET, ok=False)
        error = await refused(default)
        assert error.cooldown_seconds == 7.0
        assert "7 s cool-down" in str(error)
    finally:
        await short.close()
        await default.close()


async def test_a_peer_sees_the_open_state(harness: Harness) -> None:
    await harness.open()
    error = await refused(harness.peer)
    assert error.failures == THRESHOLD
    statuses = await harness.peer.states()
    assert statuses[TARGET].state == "open"
    assert 0 < statuses[TARGET].retry_after_seconds <= COOLDOWN


async def test_states_report_every_target_with_a_state(harness: Harness) -> None:
    await harness.fail("sftp://files.example:22", 1)
    await harness.open("https://api.example:443")
    statuses = await harness.breaker.states()
    assert set(statuses) == {"sftp://files.example:22", "https://api.example:443"}
    assert statuses["sftp://files.example:22"].state == "closed"
    assert statuses["sftp://files.example:22"].failures == 1
    assert statuses["sftp://files.example:22"].retry_after_seconds == 0
    assert statuses["https://api.example:443"].state == "open"


async def test_a_target_is_forgotten_after_its_last_failure(harness: Harness) -> None:
    await harness.fail(times=THRESHOLD - 1)
    await harness.advance(FORGET_AFTER)
    await harness.fail()  # not consecutive any more: the count starts again
    assert await harness.breaker.allow(TARGET) is False
    assert (await harness.breaker.states())[TARGET].failures == 1
    await harness.advance(FORGET_AFTER)
    assert await harness.breaker.states() == {}


# --- guarded -------------------------------------------------------------------------


async def test_guarded_reports_marked_failures_and_successes(harness: Harness) -> None:
    for _ in range(THRESHOLD - 1):
        async with guarded(harness.breaker, TARGET) as call:
            call.failed()
    with pytest.raises(KeyError):  # an error not marked: the target answered
        async with guarded(harness.breaker, TARGET):
            raise KeyError("x")
    assert await harness.breaker.states() == {}

    async def unreachable() -> None:
        async with guarded(harness.breaker, TARGET) as call:
            call.failed()
            raise OSError("down")

    for _ in range(THRESHOLD):
        with pytest.raises(OSError, match="down"):
            await unreachable()
    with pytest.raises(CircuitOpen):
        async with guarded(harness.breaker, TARGET):
            pytest.fail("the body of an open breaker must not run")


async def test_guarded_reports_nothing_for_an_unreached_target(harness: Harness) -> None:
    await harness.fail(times=THRESHOLD - 1)

    async def local_error() -> None:
        async with guarded(harness.breaker, TARGET) as call:
            call.unreached()
            raise ValueError("no such key file")

    with pytest.raises(ValueError, match="key file"):
        await local_error()
    assert (await harness.breaker.states())[TARGET].failures == THRESHOLD - 1
    async with guarded(harness.breaker, TARGET) as call:
        call.failed()
        call.unreached()  # a failure wins
    await refused(harness.breaker)


async def test_guarded_reports_nothing_when_cancelled(harness: Harness) -> None:
    await harness.open()
    await harness.advance(COOLDOWN)
    entered = asyncio.Event()

    async def probe() -> None:
        async with guarded(harness.breaker, TARGET) as call:
            assert call.probe
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(probe())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await harness.breaker.states())[TARGET].state == "half_open"
    await refused(harness.peer)  # the probe stays taken until its timeout


async def test_guarded_without_a_breaker_does_nothing() -> None:
    async with guarded(None, TARGET) as call:
        call.failed()
    assert not call.probe


# --- arguments, opening --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("failure_threshold", 0),
        ("cooldown_seconds", 0),
        ("probe_timeout_seconds", -1),
        ("forget_after_seconds", 0),
    ],
)
def test_meaningless_thresholds_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        MemoryCircuitBreaker(**{name: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        open_breaker("redis://127.0.0.1:1/0", **{name: value})  # type: ignore[arg-type]


async def test_open_breaker_picks_the_implementation_by_url() -> None:
    memory = open_breaker(None)
    assert isinstance(memory, MemoryCircuitBreaker)
    assert memory.describe() == "in-process circuit breaker"
    shared = open_breaker("redis://:hunter22@127.0.0.1:6379/3", cooldown_seconds=5)
    try:
        assert isinstance(shared, RedisCircuitBreaker)
        assert shared.cooldown_seconds == 5
        assert "hunter22" not in shared.describe()
        assert "127.0.0.1:6379/3" in shared.describe()
    finally:
        await shared.close()
    with pytest.raises(ConfigurationError, match="'http'"):
        open_breaker("http://127.0.0.1:6379")


def test_network_targets_carry_no_user_or_path() -> None:
    assert network_target("HTTPS", "API.Example", 443) == "https://api.example:443"
    assert network_target("sftp", "::1", 22) == "sftp://[::1]:22"


# --- Redis down ------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_unreachable_redis_fails_open_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = RedisCircuitBreaker.from_url(
        f"redis://:s3cret-pw@127.0.0.1:{closed_port()}/0", failure_threshold=1
    )
    try:
        with caplog.at_level(logging.WARNING, logger="vecron.breaker"):
            for _ in range(5):
                assert await breaker.allow(TARGET) is False
                await breaker.record(TARGET, ok=False)
        assert breaker.failing_open
        warnings = [r.getMessage() for r in caplog.records if r.name == "vecron.breaker"]
        assert len(warnings) == 1  # once, not once per call
        assert "without circuit breaking" in warnings[0]
        assert "s3cret-pw" not in warnings[0]
        with pytest.raises(BackendUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
            await breaker.states()
    finally:
        await breaker.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung Redis)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


async def test_a_hung_redis_costs_one_timeout_per_retry_interval(silent_port: int) -> None:
    breaker = RedisCircuitBreaker.from_url(
        f"redis://127.0.0.1:{silent_port}/0", timeout_seconds=0.2, retry_interval_seconds=0.6
    )
    try:
        started = time.monotonic()
        assert await breaker.allow(TARGET) is False
        assert 0.15 <= time.monotonic() - started < 1.5  # one timeout
        started = time.monotonic()
        for _ in range(50):
            assert await breaker.allow(TARGET) is False
            await breaker.record(TARGET, ok=False)
        assert time.monotonic() - started < 0.1  # not asked again meanwhile
        await asyncio.sleep(0.65)
        started = time.monotonic()
        assert await breaker.allow(TARGET) is False
        assert time.monotonic() - started >= 0.15  # asked again after the interval
    finally:
        await breaker.close()


async def test_the_redis_breaker_recovers_when_redis_answers_again(
    redis_server: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    good = RedisCircuitBreaker.from_url(redis_server, prefix=redis_prefix, failure_threshold=1)
    client = aioredis.Redis.from_url(redis_server)
    breaker = RedisCircuitBreaker(client, prefix=redis_prefix, failure_threshold=1, clock=clock)
    try:
        breaker._went_down(ConnectionError("gone"))  # as after a failed call
        await breaker.record(TARGET, ok=False)  # dropped while failing open
        assert await breaker.allow(TARGET) is False
        clock.now += 10
        with caplog.at_level(logging.WARNING, logger="vecron.breaker"):
            await breaker.record(TARGET, ok=False)
        assert not breaker.failing_open
        assert "reachable again" in caplog.text
        await refused(good)
    finally:
        await good.close()
        await breaker.close()  # leaves the client it was given open
        assert await client.ping()
        await client.aclose()
