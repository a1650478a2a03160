"""Step executors, one module per step type (``base.py`` holds the contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vecron.runtime.steps.base import StepExecutor, StepRun

if TYPE_CHECKING:
    from vecron.backends.breaker import CircuitBreaker

__all__ = ["StepExecutor", "StepRun", "default_executors"]


def default_executors(*, breaker: CircuitBreaker | None = None) -> dict[str, StepExecutor]:
    """One executor per step type this build can run, keyed by step type.

    The http, database and sftp executors share ``breaker`` (circuit breakers per
    target); without one they share a new in-process
    :class:`~vecron.backends.breaker.MemoryCircuitBreaker` with its defaults. Pass
    ``open_breaker(settings.redis_url)`` to share the breakers between processes; the
    caller closes it.
    """
    from vecron.backends.breaker import MemoryCircuitBreaker
    from vecron.runtime.steps.database import DatabaseStepExecutor
    from vecron.runtime.steps.files import FileStepExecutor
    from vecron.runtime.steps.http import HttpStepExecutor
    from vecron.runtime.steps.sftp import SftpStepExecutor

    shared = breaker if breaker is not None else MemoryCircuitBreaker()
    executors: list[StepExecutor] = [
        HttpStepExecutor(breaker=shared),
        DatabaseStepExecutor(breaker=shared),
    ]
    executors.append(SftpStepExecutor(breaker=shared))
    executors.append(FileStepExecutor())
    return {executor.step_type: executor for executor in executors}
