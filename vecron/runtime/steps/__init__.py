"""Step executors, one module per step type (``base.py`` holds the contract)."""

from __future__ import annotations

from vecron.runtime.steps.base import StepExecutor, StepRun

__all__ = ["StepExecutor", "StepRun", "default_executors"]


def default_executors() -> dict[str, StepExecutor]:
    """One executor per step type this build can run, keyed by step type."""
    from vecron.runtime.steps.database import DatabaseStepExecutor
    from vecron.runtime.steps.files import FileStepExecutor
    from vecron.runtime.steps.http import HttpStepExecutor
    from vecron.runtime.steps.sftp import SftpStepExecutor

    executors: list[StepExecutor] = [HttpStepExecutor(), DatabaseStepExecutor()]
    executors.append(SftpStepExecutor())
    executors.append(FileStepExecutor())
    return {executor.step_type: executor for executor in executors}
