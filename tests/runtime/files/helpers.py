"""Running the file step against a real object store, as the worker does."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from vecron.backends.objectstore import ObjectStore
from vecron.runtime.steps.base import StepRun
from vecron.runtime.steps.files import FileStepExecutor
from vecron.runtime.values import MappingSecrets, ValueResolver
from vecron.spec.models import FileConfig, FileReadConfig, FileWriteConfig

FIXTURES = Path(__file__).parent
LOG = logging.getLogger("tests.runtime.files")
_CONFIG: TypeAdapter[FileReadConfig | FileWriteConfig] = TypeAdapter(FileConfig)


def step_run(
    objects: ObjectStore,
    *,
    step_id: str = "step",
    steps: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> StepRun:
    """A StepRun over ``objects`` whose context has ``steps`` as earlier step entries."""
    context: dict[str, Any] = {
        "job": {"name": "files-test", "id": "job-1"},
        "execution": {"id": "exec-1", "date": "2026-11-30"},
        "steps": {
            name: {"status": "succeeded", "output": output}
            for name, output in (steps or {}).items()
        },
        "variables": dict(variables or {}),
    }
    values = ValueResolver(
        context=context, variables=dict(variables or {}), secrets=MappingSecrets({})
    )
    return StepRun(
        job_id="job-1",
        job_name="files-test",
        execution_id="exec-1",
        step_id=step_id,
        context=context,
        values=values,
        objects=objects,
        timeout_seconds=None,
        log=logging.LoggerAdapter(LOG, {"step_id": step_id}),
    )


def config(**fields: Any) -> FileReadConfig | FileWriteConfig:
    return _CONFIG.validate_python(fields)


async def read(objects: ObjectStore, source_path: str, **fields: Any) -> dict[str, Any]:
    """Run a read step of ``source_path`` (format csv unless given)."""
    fields.setdefault("format", "csv")
    step = config(operation="read", source_path=source_path, **fields)
    return await FileStepExecutor().run(step, step_run(objects, step_id="read"))


async def write(
    objects: ObjectStore,
    data: Any,
    destination_path: str,
    **fields: Any,
) -> dict[str, Any]:
    """Run a write step whose data_source is ``data`` (rows or an earlier output)."""
    step = config(
        operation="write",
        destination_path=destination_path,
        data_source="{{steps.earlier.output}}",
        **fields,
    )
    return await FileStepExecutor().run(step, step_run(objects, steps={"earlier": data}))
