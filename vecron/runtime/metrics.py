"""Prometheus metrics of one vecron process, in a registry of its own (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)


class Metrics:
    """The counters and histograms vecron exposes on ``/metrics``."""

    def __init__(self) -> None:
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

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
