"""The in-process circuit breaker: the embedded twin of :class:`RedisCircuitBreaker`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vecron.backends.breaker.base import (
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_FORGET_AFTER_SECONDS,
    DEFAULT_PROBE_TIMEOUT_SECONDS,
    BreakerStatus,
    check_arguments,
)
from vecron.errors import CircuitOpen


@dataclass(slots=True)
class _Target:
    failures: int = 0
    opened_until: float | None = None  # clock(); None while closed
    probe_until: float = 0.0  # clock(); a probe is in flight until then
    forget_at: float = 0.0


class MemoryCircuitBreaker:
    """Breakers in one process, for one event loop.

    ``allow`` and ``record`` never await, so concurrent calls on one loop are
    serialised: exactly one gets the probe. Defaults: 5 consecutive failures open a
    breaker for 30 s; a probe may take 60 s before another caller may probe; a target
    is forgotten an hour after its last failure (swept at most every
    ``sweep_interval_seconds``).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        probe_timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS,
        forget_after_seconds: float = DEFAULT_FORGET_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_seconds: float = 60.0,
    ) -> None:
        check_arguments(
            failure_threshold=failure_threshold,
            cooldown_seconds=cooldown_seconds,
            probe_timeout_seconds=probe_timeout_seconds,
            forget_after_seconds=forget_after_seconds,
        )
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        self._keep_seconds = max(forget_after_seconds, cooldown_seconds + probe_timeout_seconds)
        self._clock = clock
        self._targets: dict[str, _Target] = {}
        self._sweep_interval_seconds = sweep_interval_seconds
        self._next_sweep = clock() + sweep_interval_seconds

    async def allow(self, target: str) -> bool:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        state = self._live(target, now)
        if state is None or state.opened_until is None:
            return False
        if now < state.opened_until:
            raise self._refusal(target, state, state.opened_until - now, probing=False)
        if now < state.probe_until:
            raise self._refusal(target, state, state.probe_until - now, probing=True)
        state.probe_until = now + self.probe_timeout_seconds
        return True

    async def record(self, target: str, *, ok: bool | None, probe: bool = False) -> None:
        now = self._clock()
        if ok:
            self._targets.pop(target, None)
            return
        state = self._live(target, now)
        if ok is None:
            if probe and state is not None:
                state.probe_until = 0.0  # the probe's turn goes to the next caller
            return
        if state is None:
            state = self._targets[target] = _Target()
        if state.opened_until is None:
            state.failures += 1
            if state.failures >= self.failure_threshold:
                state.opened_until = now + self.cooldown_seconds
                state.probe_until = 0.0
        elif probe and now >= state.opened_until:
            state.failures += 1
            state.opened_until = now + self.cooldown_seconds
            state.probe_until = 0.0
        else:
            return  # a call started before the breaker opened: it changes nothing
        state.forget_at = now + self._keep_seconds

    async def states(self) -> dict[str, BreakerStatus]:
        now = self._clock()
        self._sweep(now)
        found: dict[str, BreakerStatus] = {}
        for target, state in self._targets.items():
            if state.opened_until is None:
                found[target] = BreakerStatus(
                    state="closed", failures=state.failures, retry_after_seconds=0.0
                )
            elif now < state.opened_until:
                found[target] = BreakerStatus(
                    state="open",
                    failures=state.failures,
                    retry_after_seconds=min(state.opened_until - now, self.cooldown_seconds),
                )
            else:
                found[target] = BreakerStatus(
                    state="half_open",
                    failures=state.failures,
                    retry_after_seconds=min(
                        max(state.probe_until - now, 0.0), self.probe_timeout_seconds
                    ),
                )
        return found

    async def close(self) -> None:
        self._targets.clear()

    def describe(self) -> str:
        return "in-process circuit breaker"

    @property
    def target_count(self) -> int:
        """How many targets have a state in memory (stale ones included until a sweep)."""
        return len(self._targets)

    def _live(self, target: str, now: float) -> _Target | None:
        state = self._targets.get(target)
        if state is not None and now >= state.forget_at:
            del self._targets[target]
            return None
        return state

    def _sweep(self, now: float) -> None:
        stale = [target for target, state in self._targets.items() if now >= state.forget_at]
        for target in stale:
            del self._targets[target]
        self._next_sweep = now + self._sweep_interval_seconds

    def _refusal(self, target: str, state: _Target, left: float, *, probing: bool) -> CircuitOpen:
        # min(): float rounding must not make the time left exceed the whole period
        period = self.probe_timeout_seconds if probing else self.cooldown_seconds
        return CircuitOpen(
            target,
            failures=state.failures,
            retry_after_seconds=min(left, period),
            cooldown_seconds=self.cooldown_seconds,
            probing=probing,
        )
