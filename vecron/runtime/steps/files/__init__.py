"""The ``file_processing`` step: CSV, Excel and Parquet, read and written batch by batch.

:mod:`.executor` runs the step; the other modules are its parts, one per format
(:mod:`.csvfile`, :mod:`.excelread`, :mod:`.excelwrite`, :mod:`.columnar`) and per
stage (:mod:`.sources`, :mod:`.transform` with :mod:`.convert` and :mod:`.filtering`).
The user's guide is ``docs/files.md``.
"""

from __future__ import annotations

from vecron.runtime.steps.files.executor import FileStepExecutor

__all__ = ["FileStepExecutor"]
