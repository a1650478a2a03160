"""A StepRun for executor tests: a real local object store and a real ValueResolver."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vecron.backends.objectstore import LocalObjectStore
from vecron.runtime.steps.base import StepRun
from vecron.runtime.values import MappingSecrets, ValueResolver

LOG = logging.getLogger("tests.runtime")


def make_step_run(
    root: Path,
    *,
    job_name: str,
    step_id: str,
    steps: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> StepRun:
    """A StepRun whose context has ``steps`` as earlier entries and ``payload`` as the
    webhook's payload."""
    context: dict[str, Any] = {
        "job": {"name": job_name, "id": "job-1"},
        "execution": {"id": "exec-1", "date": "2026-01-01"},
        "steps": dict(steps or {}),
        "webhook": {"payload": dict(payload)} if payload is not None else {},
        "variables": dict(variables or {}),
    }
    values = ValueResolver(
        context=context, variables=dict(variables or {}), secrets=MappingSecrets(secrets or {})
    )
    return StepRun(
        job_id="job-1",
        job_name=job_name,
        execution_id="exec-1",
        step_id=step_id,
        context=context,
        values=values,
        objects=LocalObjectStore(root / "objects"),
        timeout_seconds=None,
        log=logging.LoggerAdapter(LOG, {"step_id": step_id}),
    )
