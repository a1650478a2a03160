"""Export: live jobs as redacted documents, written as files, an array, a ZIP or a
job repository's layout.

Every job is read from the object store (``jobs/{job_id}/definition.json``, the
complete definition with its defaults) and redacted (:mod:`vecron.transfer.redact`)
before any byte of it is written anywhere.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecron import __version__
from vecron.backends.database import JobRecord
from vecron.errors import JobNotFound, ObjectNotFound, VecronError
from vecron.stores import Stores
from vecron.transfer.formats import (
    Format,
    dumps,
    format_of,
    job_file_name,
    suffix,
    write_zip,
)
from vecron.transfer.redact import Placeholder, redact

JOBS_DIR = "jobs"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportMetadata:
    """Who exported, when, with which vecron; the same for every job of one export."""

    export_date: datetime
    exported_by: str
    system_version: str = f"vecron {__version__}"

    @classmethod
    def now(cls, exported_by: str | None = None) -> ExportMetadata:
        return cls(
            export_date=datetime.now(UTC).replace(microsecond=0),
            exported_by=exported_by or _user(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedJob:
    """One job, redacted: its definition has no secret left in it."""

    record: JobRecord
    definition: dict[str, Any]
    placeholders: tuple[Placeholder, ...]
    redacted: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.record.name

    def document(self, meta: ExportMetadata) -> dict[str, Any]:
        """The export document: the definition, its placeholders, then ``metadata``."""
        return {
            **self.definition,
            "placeholders": [p.as_json() for p in self.placeholders],
            "metadata": {
                "export_date": meta.export_date.isoformat(),
                "exported_by": meta.exported_by,
                "system_version": meta.system_version,
                "job_id": self.record.job_id,
                "source_path": self.record.source_path,
                "source_commit": self.record.source_commit,
            },
        }


async def collect(
    stores: Stores,
    names: Sequence[str] = (),
    *,
    key_pattern: re.Pattern[str] | None = None,
) -> list[ExportedJob]:
    """The jobs ``names`` (every job when empty), read and redacted, by name.

    Raises :class:`JobNotFound` for an unknown name and :class:`VecronError` for a job
    whose definition is missing from the object store.
    """
    if names:
        records = [await stores.database.get_job(name) for name in dict.fromkeys(names)]
    else:
        records = await stores.database.list_jobs()
        if not records:
            raise JobNotFound("there are no jobs to export")
    exported = []
    for record in sorted(records, key=lambda r: r.name):
        try:
            definition = json.loads(await stores.objects.get(record.minio_definition_path))
        except ObjectNotFound:
            raise VecronError(
                f"job {record.name!r} has no definition in the object store "
                f"({record.minio_definition_path}); sync it first"
            ) from None
        redaction = redact(definition, key_pattern=key_pattern)
        exported.append(
            ExportedJob(
                record=record,
                definition=redaction.definition,
                placeholders=redaction.placeholders,
                redacted=redaction.redacted,
            )
        )
    return exported


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportTarget:
    """Where an export goes: ``out`` a folder, a file (an array, or one document), or a
    ZIP; ``repo_layout`` writes plain job files under ``out/jobs/`` instead."""

    out: Path
    fmt: Format = "json"
    zip: bool = False
    repo_layout: bool = False
    single: bool = False  # one job asked for by name: a file holds it, not an array

    @property
    def kind(self) -> str:
        if self.repo_layout:
            return "repo"
        if self.zip or self.out.suffix.lower() == ".zip":
            return "zip"
        if self.out.is_dir() or not self.out.suffix:
            return "dir"
        return "file"


def write_export(
    jobs: Sequence[ExportedJob], target: ExportTarget, meta: ExportMetadata
) -> list[Path]:
    """Write ``jobs`` to ``target``; returns the files written."""
    kind = target.kind
    documents = [(job, dumps(job.document(meta), target.fmt)) for job in jobs]
    if kind == "dir":
        target.out.mkdir(parents=True, exist_ok=True)
        written = []
        for job, data in documents:
            path = target.out / job_file_name(job.name, meta.export_date, target.fmt)
            _write(path, data)
            written.append(path)
        return written
    if kind == "zip":
        out = target.out
        if out.is_dir():
            out = out / f"vecron-export-{meta.export_date.strftime('%Y%m%dT%H%M%SZ')}.zip"
        members = [
            (job_file_name(job.name, meta.export_date, target.fmt), data) for job, data in documents
        ]
        _write(out, write_zip(members, meta.export_date))
        return [out]
    if kind == "repo":
        written = []
        for job in jobs:
            relative = repo_path(job, target.fmt)
            _write(target.out / relative, dumps(job.definition, format_of(relative)))
            path = target.out / relative
            written.append(path)
        return written
    if target.single and len(jobs) == 1:
        data = documents[0][1]
    else:
        data = dumps([job.document(meta) for job in jobs], target.fmt)
    _write(target.out, data)
    return [target.out]


def repo_path(job: ExportedJob, fmt: Format) -> str:
    """Where a job's file goes in a job repository: where it came from, if it did."""
    source = job.record.source_path
    if source and source.endswith((".json", ".yaml", ".yml")):
        return source
    return f"{JOBS_DIR}/{job.name}{suffix(fmt)}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # a reader never sees half a file


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"
