"""Every object path in the object store, built in one place.

Layout (DESIGN.md, "Stores"):

- ``jobs/{job_id}/definition.json``: the job's current definition;
- ``jobs/{job_id}/versions/{content_hash}.json``: every definition ever synced,
  immutable, so that an execution runs the version it was created with;
- ``jobs/{job_id}/executions/{execution_id}/context.json``: the Job Context;
- ``jobs/{job_id}/executions/{execution_id}/output/{filename}``: files a run wrote;
- ``files/{path}``: the job repository's ``files/`` folder.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime

from vecron.errors import SpecError

JOBS_PREFIX = "jobs/"
FILES_PREFIX = "files/"


def _segment(value: str, what: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise SpecError(f"{what} {value!r} cannot be part of an object path")
    return value


def job_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{_segment(job_id, 'job id')}/"


def definition_path(job_id: str) -> str:
    return f"{job_prefix(job_id)}definition.json"


def definition_version_path(job_id: str, content_hash: str) -> str:
    return f"{job_prefix(job_id)}versions/{_segment(content_hash, 'content hash')}.json"


def execution_prefix(job_id: str, execution_id: str) -> str:
    return f"{job_prefix(job_id)}executions/{_segment(execution_id, 'execution id')}/"


def context_path(job_id: str, execution_id: str) -> str:
    return f"{execution_prefix(job_id, execution_id)}context.json"


def output_path(job_id: str, execution_id: str, filename: str) -> str:
    return f"{execution_prefix(job_id, execution_id)}output/{_segment(filename, 'file name')}"


def output_file_path(job_id: str, execution_id: str, relative: str) -> str:
    """``output/{relative}``, where ``relative`` may hold ``/``: a file a run wrote that
    keeps a folder structure (an sftp step's recursive download)."""
    segments = [_segment(segment, "file name") for segment in relative.split("/")]
    return f"{execution_prefix(job_id, execution_id)}output/{'/'.join(segments)}"


def repo_file_path(relative: str) -> str:
    """The object path of ``files/<relative>`` from the job repository."""
    clean = posixpath.normpath(relative.replace("\\", "/")).lstrip("/")
    if clean.startswith("../") or clean in ("", ".", ".."):
        raise SpecError(f"repository file {relative!r} is outside files/")
    return f"{FILES_PREFIX}{clean}"


def fire_lock_name(job_id: str, fire_time: datetime) -> str:
    """The lock a scheduler takes before it fires ``job_id`` at ``fire_time``."""
    return f"fire:{job_id}:{fire_time.astimezone(UTC).isoformat()}"
