"""Import: validation as `vecron validate`, secrets before anything is written, new
jobs with new ids, renamed copies, per-job outcomes, and syncs that leave them alone.

Runs on the embedded stores and on PostgreSQL + S3 (the ``stores`` fixture).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.http_target import HttpTarget
from tests.transfer.planted import CUSTOM_PATTERN, JOB_NAME, planted_job, sync_jobs
from tests.transfer.test_redact import recovered_secrets, textual
from vecron import paths
from vecron.backends.database import VariableSource
from vecron.errors import JobNotFound, VecronError
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import plan_once, sync_once
from vecron.spec.validate import validate_paths
from vecron.stores import Stores
from vecron.transfer.export import ExportMetadata, ExportTarget, collect, write_export
from vecron.transfer.formats import read_inputs
from vecron.transfer.importer import Candidate, create_job, import_jobs, validate
from vecron.transfer.redact import compile_pattern, fill_secrets

SIMPLE = {
    "name": "nightly",
    "schedule": {"type": "cron", "expression": "0 0 2 * * ?"},
    "steps": [
        {
            "id": "call",
            "type": "http",
            "config": {
                "url": "https://x.example/",
                "headers": {"Authorization": "${secret:NIGHTLY_TOKEN}"},
            },
        }
    ],
}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


async def _candidates(stores: Stores, *files: Path) -> list[Candidate]:
    stored = await stores.database.get_variables(decrypt=False)
    return validate(read_inputs(list(files)), global_variables=dict.fromkeys(stored, ""))


async def _names(stores: Stores) -> list[str]:
    return [job.name for job in await stores.database.list_jobs()]


async def test_an_imported_job_is_a_new_job_with_its_definition_in_the_object_store(
    stores: Stores, tmp_path: Path
) -> None:
    source = _write(tmp_path / "nightly.json", SIMPLE)
    [outcome] = await import_jobs(
        await _candidates(stores, source), stores, secrets={"NIGHTLY_TOKEN": "Bearer t-123"}
    )
    assert outcome.created, outcome.error
    assert outcome.name == "nightly"
    record = await stores.database.get_job("nightly")
    assert record.job_id == outcome.job_id
    assert record.source_path is None
    assert record.minio_definition_path == f"jobs/{record.job_id}/definition.json"
    assert record.next_run_at is not None  # scheduled like a synced job
    assert record.content_hash is not None
    stored = json.loads(await stores.objects.get(record.minio_definition_path))
    version = paths.definition_version_path(record.job_id, record.content_hash)
    assert json.loads(await stores.objects.get(version)) == stored
    assert stored["steps"][0]["config"]["headers"] == {"Authorization": "${secret:NIGHTLY_TOKEN}"}
    # The secret is stored as `vecron vars set --secret` stores it: encrypted, masked.
    variables = await stores.database.get_variables(decrypt=False)
    assert variables["NIGHTLY_TOKEN"].secret
    assert variables["NIGHTLY_TOKEN"].source == VariableSource.CLI
    assert variables["NIGHTLY_TOKEN"].value != "Bearer t-123"
    decrypted = await stores.database.get_variables(decrypt=True)
    assert decrypted["NIGHTLY_TOKEN"].value == "Bearer t-123"


async def test_a_taken_name_gets_a_copy_suffix_each_time(stores: Stores, tmp_path: Path) -> None:
    source = _write(tmp_path / "nightly.json", SIMPLE)
    array = _write(tmp_path / "array.json", [SIMPLE, SIMPLE])
    secrets = {"NIGHTLY_TOKEN": "t"}
    first = await import_jobs(await _candidates(stores, source), stores, secrets=secrets)
    more = await import_jobs(await _candidates(stores, array), stores, secrets={})
    assert [o.name for o in [*first, *more]] == ["nightly", "nightly-copy-1", "nightly-copy-2"]
    assert [o.renamed_from for o in more] == ["nightly", "nightly"]
    ids = {o.job_id for o in [*first, *more]}
    assert len(ids) == 3
    copy = await stores.database.get_job("nightly-copy-2")
    stored = json.loads(await stores.objects.get(copy.minio_definition_path))
    assert stored["name"] == "nightly-copy-2"


async def test_missing_secrets_refuse_the_whole_import_and_write_nothing(
    stores: Stores, tmp_path: Path
) -> None:
    other = {
        **SIMPLE,
        "name": "other",
        "steps": [
            {
                **SIMPLE["steps"][0],
                "config": {
                    "url": "https://x.example/",
                    "auth": {"type": "bearer", "token": "${secret:OTHER}"},
                },
            }
        ],
    }
    array = _write(tmp_path / "array.json", [SIMPLE, other])
    with pytest.raises(VecronError) as raised:
        await import_jobs(
            await _candidates(stores, array), stores, secrets={"NIGHTLY_TOKEN": "given-value"}
        )
    message = str(raised.value)
    assert "OTHER (needed by " in message
    assert "array.json[1]" in message
    assert "given-value" not in message
    assert await _names(stores) == []
    assert await stores.database.get_variables() == {}  # not even the given one
    assert [o async for o in _objects(stores)] == []


async def test_a_stored_secret_is_not_asked_for(stores: Stores, tmp_path: Path) -> None:
    await stores.database.set_variable(
        "NIGHTLY_TOKEN", "already", secret=True, source=VariableSource.CLI
    )
    source = _write(tmp_path / "nightly.json", SIMPLE)
    [outcome] = await import_jobs(await _candidates(stores, source), stores, secrets={})
    assert outcome.created
    decrypted = await stores.database.get_variables(decrypt=True)
    assert decrypted["NIGHTLY_TOKEN"].value == "already"


async def test_bulk_import_reports_each_job_and_a_bad_one_leaves_nothing_behind(
    stores: Stores, tmp_path: Path
) -> None:
    bad = {**SIMPLE, "name": "broken", "timeout_seconds": "soon"}
    array = _write(tmp_path / "array.json", [SIMPLE, bad, {**SIMPLE, "name": "second"}])
    candidates = await _candidates(stores, array)
    outcomes = await import_jobs(candidates, stores, secrets={"NIGHTLY_TOKEN": "t"})
    assert [(o.label.rsplit("/", 1)[-1], o.created) for o in outcomes] == [
        ("array.json[0]", True),
        ("array.json[1]", False),
        ("array.json[2]", True),
    ]
    assert "timeout_seconds: must be a valid integer" in (outcomes[1].error or "")
    assert sorted(await _names(stores)) == ["nightly", "second"]
    created = {o.job_id for o in outcomes if o.created}
    prefixes = {name.split("/")[1] async for name in _objects(stores)}
    assert prefixes == created  # no object of the failed job


async def test_validation_gives_the_messages_and_lines_of_vecron_validate(
    stores: Stores, tmp_path: Path
) -> None:
    bad = {**SIMPLE, "steps": [{"id": "call", "type": "http", "config": {"method": "GET"}}]}
    single = _write(tmp_path / "bad.json", bad)
    [candidate] = await _candidates(stores, single)
    assert candidate.job is None
    expected = [str(d) for d in validate_paths([single]).diagnostics]
    assert [str(d) for d in candidate.diagnostics] == expected
    assert len(expected) == 1
    assert "missing required field 'url'" in expected[0]
    assert expected[0].startswith(f"{single}:")
    # Inside an array, the line is the document's own line in the file.
    array = _write(tmp_path / "array.json", [SIMPLE, bad])
    candidates = await _candidates(stores, array)
    [diagnostic] = candidates[1].diagnostics
    assert diagnostic.path == str(array)
    assert "missing required field 'url'" in diagnostic.message
    assert diagnostic.line > 20  # in the second document, not the first


async def test_a_syntax_error_names_file_line_and_column(stores: Stores, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "steps": [}\n', encoding="utf-8")
    [candidate] = await _candidates(stores, broken)
    [diagnostic] = candidate.diagnostics
    assert (diagnostic.path, diagnostic.line) == (str(broken), 2)
    assert diagnostic.message.startswith("invalid JSON")


async def test_a_sync_never_deletes_an_imported_job_and_a_file_takes_it_over(
    stores: Stores, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    synced = {**SIMPLE, "name": "from-git"}
    await sync_jobs(stores, repo, {"jobs/from-git.json": json.dumps(synced)})
    source = _write(tmp_path / "nightly.json", SIMPLE)
    [outcome] = await import_jobs(
        await _candidates(stores, source), stores, secrets={"NIGHTLY_TOKEN": "t"}
    )
    # The repository does not have it: the sync leaves it, also with pruning on.
    (repo / "jobs/from-git.json").unlink()
    plan = await plan_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
    assert [(c.action, c.name) for c in plan.changes] == [("delete", "from-git")]
    await sync_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
    assert await _names(stores) == ["nightly"]
    # The empty-repository guard counts only the repository's jobs.
    await sync_jobs(stores, repo, {"jobs/from-git.json": json.dumps(synced)})
    (repo / "jobs/from-git.json").unlink()
    plan = await plan_once(DirectorySource(repo), stores, SyncOptions())
    assert plan.refusal is not None
    assert "remove all 1 jobs" in plan.refusal
    # A file that defines the imported job's name takes the job over (same id).
    changed = {**SIMPLE, "description": "now in Git"}
    await sync_jobs(stores, repo, {"jobs/nightly.json": json.dumps(changed)})
    record = await stores.database.get_job("nightly")
    assert record.job_id == outcome.job_id
    assert record.source_path == "jobs/nightly.json"
    with pytest.raises(JobNotFound):
        await stores.database.get_job("from-git")


async def test_export_then_import_restores_an_equivalent_job_with_its_secrets(
    stores: Stores, tmp_path: Path, target: HttpTarget
) -> None:
    planted = planted_job(target)
    await sync_jobs(stores, tmp_path / "repo", {"jobs/partner.json": planted.text})
    original = await stores.database.get_job(JOB_NAME)
    original_definition = json.loads(await stores.objects.get(original.minio_definition_path))
    [exported] = await collect(stores, key_pattern=compile_pattern(CUSTOM_PATTERN))
    meta = ExportMetadata.now("tests")
    [bundle] = write_export([exported], ExportTarget(out=tmp_path / "b.zip"), meta)
    values = _secret_values(original_definition, exported.definition)
    [outcome] = await import_jobs(await _candidates(stores, bundle), stores, secrets=values)
    assert outcome.created
    assert outcome.name == f"{JOB_NAME}-copy-1"
    record = await stores.database.get_job(outcome.name)
    imported = json.loads(await stores.objects.get(record.minio_definition_path))
    stored = {n: v.value for n, v in (await stores.database.get_variables(decrypt=True)).items()}
    restored = fill_secrets(imported, stored)
    expected = textual(original_definition, exported.definition)
    assert restored == {**expected, "name": outcome.name}
    assert restored["variables"]["LEGACY_PASSWORD"] == planted.secrets["numeric_variable"]
    assert record.webhook_enabled
    assert record.webhook_secret is None


def _secret_values(original: dict[str, Any], redacted: dict[str, Any]) -> dict[str, str]:
    return recovered_secrets(original, redacted)


async def _objects(stores: Stores) -> Any:
    async for info in stores.objects.list("jobs/"):
        yield info.path


async def test_a_name_taken_meanwhile_leaves_no_objects_and_takes_the_next_suffix(
    stores: Stores, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _write(tmp_path / "nightly.json", SIMPLE)
    secrets = {"NIGHTLY_TOKEN": "t"}
    [first] = await import_jobs(await _candidates(stores, source), stores, secrets=secrets)
    [candidate] = await _candidates(stores, source)
    with caplog.at_level(logging.INFO, logger="vecron.transfer"):
        # As if another import created "nightly" after this one read the names.
        second = await create_job(
            candidate, stores, secrets=secrets, taken=set(), now=datetime.now(UTC)
        )
    assert "job name nightly was taken meanwhile" in caplog.text
    assert (first.name, second.name) == ("nightly", "nightly-copy-1")
    prefixes = {name.split("/")[1] async for name in _objects(stores)}
    assert prefixes == {first.job_id, second.job_id}  # the lost attempt's objects are gone
