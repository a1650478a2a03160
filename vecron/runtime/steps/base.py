"""The contract of a step executor: one implementation per step type.

The worker creates one executor of each type per process and keeps it for the
process's life, so executors may pool connections (an HTTP client, one database pool
per target); :meth:`StepExecutor.close` releases them at shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from vecron.backends.objectstore import ObjectStore
from vecron.runtime.values import ValueResolver


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRun:
    """Everything an executor gets for one run of one step.

    ``context`` is the Job Context so far (``job``, ``execution``, ``steps``,
    ``webhook``, ``variables``), read-only. ``values`` renders the config's templates
    and keeps track of secrets. ``timeout_seconds`` is the step's own limit (the config's
    request or query timeout is separate); the worker enforces it by cancelling ``run``.
    """

    job_id: str
    job_name: str
    execution_id: str
    step_id: str
    context: Mapping[str, Any]
    values: ValueResolver
    objects: ObjectStore
    timeout_seconds: float | None
    log: logging.LoggerAdapter[logging.Logger]


class StepExecutor(Protocol):
    """Runs every step of one type.

    ``run`` returns the step's ``output``: plain JSON data (dicts, lists, strings,
    numbers, booleans, None) that later steps reference; it never holds a credential.
    A failure the job's author can act on raises :class:`~vecron.errors.StepFailed`
    whose message names the target and the cause; a missing reference or variable
    raises :class:`~vecron.errors.ReferenceResolutionError`. ``run`` must stop promptly
    when cancelled (timeouts and shutdown cancel it) and leave nothing half-written.
    """

    step_type: ClassVar[str]

    async def run(self, config: Any, run: StepRun) -> dict[str, Any]: ...

    async def close(self) -> None: ...
