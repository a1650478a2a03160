"""Properties of export and import over generated jobs (hypothesis).

Export then import gives an equivalent job with its secrets restored: through the
export bytes (JSON and YAML), the import's reading and validation, and the stores.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.spec.strategies import job_documents
from tests.transfer.test_redact import recovered_secrets, textual
from vecron.spec.models import Job, dump_definition
from vecron.stores import Stores
from vecron.transfer.formats import dumps, read_inputs
from vecron.transfer.importer import import_jobs, validate
from vecron.transfer.redact import fill_secrets, redact, secret_references


def _document(definition: dict[str, Any]) -> dict[str, Any]:
    result = redact(definition)
    return {
        **result.definition,
        "placeholders": [p.as_json() for p in result.placeholders],
        "metadata": {"export_date": "2026-11-29T03:00:00+00:00", "exported_by": "tests"},
    }


@given(job_documents(), st.sampled_from(["json", "yaml"]))
def test_an_exported_file_reads_back_as_the_same_job_once_its_secrets_are_filled(
    document: dict[str, Any], fmt: str
) -> None:
    definition = dump_definition(Job.model_validate(document))
    exported = _document(definition)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"job.{fmt}"
        path.write_bytes(dumps(exported, "json" if fmt == "json" else "yaml"))
        [candidate] = validate(read_inputs([path]))
    assert candidate.job is not None, [str(d) for d in candidate.diagnostics]
    values = recovered_secrets(definition, redact(definition).definition)
    assert set(candidate.secrets) == {p["name"] for p in exported["placeholders"]}
    restored = fill_secrets(dump_definition(candidate.job), values)
    assert restored == textual(definition, redact(definition).definition)


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=job_documents())
async def test_export_then_import_through_the_stores_restores_the_job(
    stores: Stores, document: dict[str, Any]
) -> None:
    definition = dump_definition(Job.model_validate(document))
    redacted = redact(definition).definition
    # Placeholders the job already had need values too; they are the same on both sides.
    already = {name: f"pre-{name}" for name in secret_references(definition)}
    values = {**already, **recovered_secrets(definition, redacted)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.json"
        path.write_bytes(dumps(_document(definition), "json"))
        candidates = validate(read_inputs([path]))
    [outcome] = await import_jobs(candidates, stores, secrets=values)
    assert outcome.created, outcome.error
    assert outcome.name is not None
    record = await stores.database.get_job(outcome.name)
    stored = json.loads(await stores.objects.get(record.minio_definition_path))
    secrets = {n: v.value for n, v in (await stores.database.get_variables(decrypt=True)).items()}
    expected = textual({**definition, "name": outcome.name}, {**redacted, "name": outcome.name})
    assert fill_secrets(stored, secrets) == fill_secrets(expected, already)
