"""Prometheus metrics of one vecron process, in a registry of its own (no globals)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from vecron.backends.breaker.base import BREAKER_STATES

if TYPE_CHECKING:
    from vecron.backends.breaker import CircuitBreaker

log = logging.getLogger("vecron.metrics")

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)


class Metrics:
    """The counters and histograms vecron exposes on ``/metrics``.

    With a ``breaker``, :meth:`refresh` reads every target's circuit breaker into
    ``circuit_breaker_state{target, state}`` (1 for the current state of ``closed``,
    ``open``, ``half_open``, 0 for the others) and
    ``circuit_breaker_consecutive_failures{target}``. Targets with no failures are
    closed and absent. With the Redis breaker this is the state every process shares.
    """

    def __init__(self, *, breaker: CircuitBreaker | None = None) -> None:
        self.breaker = breaker
        self.registry = CollectorRegistry()
        self.job_success = Counter(
            "job_success", "Executions that succeeded.", ["job"], registry=self.registry
        )
        self.job_failed = Counter(
            "job_failed",
            "Executions that ended failed, timed out or interrupted.",
            ["job", "status"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "job_duration_seconds",
            "Run time of executions, from start to finish.",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_size = Gauge(
            "job_queue_size", "Executions waiting or running in the queue.", registry=self.registry
        )
        self.scheduler_lag = Histogram(
            "scheduler_lag_seconds",
            "How late the scheduler fired a job after its fire time.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "The circuit breaker of a step target: 1 for its current state.",
            ["target", "state"],
            registry=self.registry,
        )
        self.breaker_failures = Gauge(
            "circuit_breaker_consecutive_failures",
            "Consecutive failures of a step target.",
            ["target"],
            registry=self.registry,
        )

    async def refresh(self) -> None:
        """Update what is read at scrape time (the circuit breakers); call before
        :meth:`render`. A breaker store that cannot be read keeps the last values."""
        if self.breaker is None:
            return
        try:
            states = await self.breaker.states()
        except (OSError, ConnectionError) as exc:
            log.warning("metrics: cannot read the circuit breakers: %s", exc)
            return
        self.breaker_state.clear()
        self.breaker_failures.clear()
        for target, status in states.items():
            for state in BREAKER_STATES:
                self.breaker_state.labels(target, state).set(1 if state == status.state else 0)
            self.breaker_failures.labels(target).set(status.failures)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
