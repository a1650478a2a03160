"""Export to files: no planted secret in any byte of any format; determinism; layout.

Runs on the embedded stores and on PostgreSQL + S3 (the ``stores`` fixture).
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.http_target import HttpTarget
from tests.transfer.planted import (
    CUSTOM_PATTERN,
    JOB_NAME,
    PlantedJob,
    leaks,
    planted_job,
    sync_jobs,
)
from vecron.errors import JobNotFound
from vecron.spec.loader import load_text
from vecron.spec.validate import check_document
from vecron.stores import Stores
from vecron.transfer.export import ExportMetadata, ExportTarget, collect, write_export
from vecron.transfer.formats import Format
from vecron.transfer.redact import compile_pattern

META = ExportMetadata(export_date=datetime(2026, 11, 29, 3, 0, tzinfo=UTC), exported_by="tests")
LATER = ExportMetadata(export_date=datetime(2027, 1, 2, 4, 5, 6, tzinfo=UTC), exported_by="other")
OUTPUTS = [
    ("dir", "json"),
    ("dir", "yaml"),
    ("array.json", "json"),
    ("array.yaml", "yaml"),
    ("bundle.zip", "json"),
    ("bundle.zip", "yaml"),
    ("repo", "json"),
    ("repo", "yaml"),
]


@pytest.fixture
async def planted(stores: Stores, tmp_path: Path, target: HttpTarget) -> PlantedJob:
    job = planted_job(target)
    other = planted_job(target, name="other-job")
    await sync_jobs(
        stores, tmp_path / "repo", {"jobs/partner.json": job.text, "jobs/other.json": other.text}
    )
    # Both jobs' secrets must stay out: merge them for the leak checks.
    return PlantedJob(
        text=job.text,
        secrets={**job.secrets, **{f"other_{k}": v for k, v in other.secrets.items()}},
    )


def _target(out: Path, kind: str, fmt: Format) -> ExportTarget:
    if kind == "dir":
        return ExportTarget(out=out / "files", fmt=fmt)
    if kind == "repo":
        return ExportTarget(out=out / "repo-out", fmt=fmt, repo_layout=True)
    return ExportTarget(out=out / kind, fmt=fmt)


def _all_bytes(paths: list[Path]) -> list[tuple[str, bytes]]:
    """Every file's bytes, and every ZIP member's bytes uncompressed."""
    found = []
    for path in paths:
        data = path.read_bytes()
        found.append((str(path), data))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                found += [(f"{path}:{n}", archive.read(n)) for n in archive.namelist()]
    return found


@pytest.mark.parametrize(("kind", "fmt"), OUTPUTS)
async def test_no_planted_secret_is_in_any_exported_byte(
    stores: Stores, planted: PlantedJob, tmp_path: Path, kind: str, fmt: Format
) -> None:
    jobs = await collect(stores, key_pattern=compile_pattern(CUSTOM_PATTERN))
    written = write_export(jobs, _target(tmp_path, kind, fmt), META)
    everything = _all_bytes(written)
    assert everything
    for where, data in everything:
        assert leaks(data, planted) == [], where
        if where.endswith((".json", ".yaml")):
            assert b"${secret:" in data, where


async def test_without_the_custom_pattern_only_that_field_stays(
    stores: Stores, planted: PlantedJob, tmp_path: Path
) -> None:
    # The pattern is what protects account_pin: without it, that one secret would leak.
    jobs = await collect(stores)
    [path] = write_export(jobs, ExportTarget(out=tmp_path / "a.json"), META)
    assert set(leaks(path.read_bytes(), planted)) == {"custom_pattern", "other_custom_pattern"}


async def test_each_job_file_holds_the_definition_placeholders_and_metadata(
    stores: Stores, planted: PlantedJob, tmp_path: Path
) -> None:
    jobs = await collect(stores, [JOB_NAME], key_pattern=compile_pattern(CUSTOM_PATTERN))
    [path] = write_export(jobs, ExportTarget(out=tmp_path / "out"), META)
    assert path.name == "job-partner-sync-20261129T030000Z.json"
    document = json.loads(path.read_bytes())
    record = await stores.database.get_job(JOB_NAME)
    assert document["metadata"] == {
        "export_date": "2026-11-29T03:00:00+00:00",
        "exported_by": "tests",
        "system_version": "vecron 0.1.0",
        "job_id": record.job_id,
        "source_path": "jobs/partner.json",
        "source_commit": None,
    }
    definition = {k: v for k, v in document.items() if k not in ("metadata", "placeholders")}
    job, findings = check_document(definition)
    assert job is not None, findings
    assert [f for f in findings if "literal secret" in f.message] == []
    # complete: every field, defaults included
    for key in ("schedule", "triggers", "variables", "timeout_seconds", "max_retries"):
        assert key in definition
    assert definition["allow_concurrent"] is False
    names = [p["name"] for p in document["placeholders"]]
    assert names == sorted(names)
    assert "PARTNER_SYNC_WEBHOOK_SECRET" in names
    assert "PARTNER_SYNC_API_TOKEN" in names
    by_name = {p["name"]: p["fields"] for p in document["placeholders"]}
    assert by_name["PARTNER_SYNC_FETCH_KEY_AUTH_PASSPHRASE"] == ["steps[10].config.auth.passphrase"]


async def test_one_named_job_to_a_file_is_an_object_and_all_jobs_an_array(
    stores: Stores, planted: PlantedJob, tmp_path: Path
) -> None:
    one = await collect(stores, [JOB_NAME])
    [single] = write_export(one, ExportTarget(out=tmp_path / "one.json", single=True), META)
    assert json.loads(single.read_bytes())["name"] == JOB_NAME
    every = await collect(stores)
    [array] = write_export(every, ExportTarget(out=tmp_path / "all.yaml", fmt="yaml"), META)
    assert [d["name"] for d in load_text(array.read_text())] == ["other-job", JOB_NAME]


@pytest.mark.parametrize(("kind", "fmt"), OUTPUTS)
async def test_export_is_deterministic_apart_from_metadata(
    stores: Stores, planted: PlantedJob, tmp_path: Path, kind: str, fmt: Format
) -> None:
    first = await collect(stores, key_pattern=compile_pattern(CUSTOM_PATTERN))
    second = await collect(stores, key_pattern=compile_pattern(CUSTOM_PATTERN))
    a = _all_bytes(write_export(first, _target(tmp_path / "a", kind, fmt), META))
    b = _all_bytes(write_export(second, _target(tmp_path / "b", kind, fmt), LATER))
    assert len(a) == len(b)
    for (_, left), (_, right) in zip(a, b, strict=True):
        if kind == "repo":
            assert left == right  # plain job files: no metadata at all
        elif not zipfile.is_zipfile(io.BytesIO(left)):
            assert _without_metadata(left, fmt) == _without_metadata(right, fmt)
            assert left != right  # the metadata did change


def _without_metadata(data: bytes, fmt: Format) -> Any:
    parsed = load_text(data.decode(), json_file=fmt == "json")
    documents = parsed if isinstance(parsed, list) else [parsed]
    for document in documents:
        assert document.pop("metadata")
    # Metadata is the last key: everything before it is byte for byte the same.
    marker = b'"metadata"' if fmt == "json" else b"metadata:"
    return documents, data.split(marker)[0]


async def test_an_unknown_job_is_an_error(stores: Stores, planted: PlantedJob) -> None:
    with pytest.raises(JobNotFound):
        await collect(stores, ["no-such-job"])
