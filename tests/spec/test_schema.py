"""The generated JSON Schema: current, well formed, and in agreement with the models.

Editors and check-jsonschema see only ``schemas/job.schema.json``; vecron sees only
the models. The two must accept the same documents, except for the checks a JSON
Schema cannot express. Those are model-only, kept out of the mutations in
tests/spec/strategies.py, and pinned in ``MODEL_ONLY``:

* cron syntax (``schedule.expression``) and IANA timezone names (``timezone``);
* ``end_at`` after ``start_at``;
* a schedule ``interval`` given as text shorter than one second (``"500ms"``);
* exactly one of ``private_key`` and ``private_key_path`` in ssh_key auth;
* the condition language of ``when`` and of filter transformations;
* ``triggers.scheduled: true`` on a job without a schedule.

Every other disagreement is a bug. ``FORMER_DISAGREEMENTS`` keeps the ones found and
fixed so far, as regression cases.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from check_jsonschema.formats.implementations import validate_rfc3339
from hypothesis import Phase, find, given, note, settings
from pydantic import ValidationError
from ruamel.yaml import YAML

from tests.spec.strategies import Doc, Mutation, job_documents, mutated_documents
from vecron.spec.models import Job, dump_definition
from vecron.spec.schema import DIALECT, job_schema, job_schema_text

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schemas" / "job.schema.json"
EXAMPLE_JOBS = sorted(
    path
    for path in (REPO / "jobs-example" / "jobs").iterdir()
    if path.suffix in {".yaml", ".yml", ".json"}
)
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def _format_checker() -> jsonschema.FormatChecker:
    # jsonschema checks "date-time" only when rfc3339-validator is installed; use the
    # same check as check-jsonschema (and editors), which always apply formats.
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(validate_rfc3339)
    return checker


VALIDATOR = jsonschema.Draft202012Validator(job_schema(), format_checker=_format_checker())


def schema_errors(doc: Any, validator: jsonschema.Validator = VALIDATOR) -> list[str]:
    return sorted(f"{error.json_path}: {error.message}" for error in validator.iter_errors(doc))


def model_errors(doc: Any) -> list[str]:
    try:
        Job.model_validate(doc)
    except ValidationError as exc:
        return [f"{error['loc']}: {error['msg']}" for error in exc.errors(include_url=False)]
    return []


def minimal(**changes: Any) -> Doc:
    doc: Doc = {"name": "job", "steps": [{"id": "a", "type": "http", "config": {"url": "u"}}]}
    return doc | changes


def with_step(config: Doc, step_type: str) -> Doc:
    return minimal(steps=[{"id": "a", "type": step_type, "config": config}])


def with_schedule(**schedule: Any) -> Doc:
    return minimal(schedule=schedule)


# --- the committed file ------------------------------------------------------------


def test_committed_schema_is_current() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == job_schema_text(), (
        "schemas/job.schema.json is stale: run `make schema` and commit the result"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == DIALECT
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
    jsonschema.Draft202012Validator.check_schema(schema)


def test_check_schema_rejects_a_broken_schema() -> None:
    # The meta-schema check above is a real check: a wrong keyword type fails it.
    broken = copy.deepcopy(job_schema())
    broken["properties"]["name"]["minLength"] = "one"
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema(broken)


# --- models and schema agree -------------------------------------------------------


@given(job_documents())
def test_valid_documents_pass_model_and_schema(doc: Doc) -> None:
    note(json.dumps(doc, indent=1))
    assert model_errors(doc) == []
    assert schema_errors(doc) == []


@given(job_documents())
def test_dumped_definitions_pass_the_schema(doc: Doc) -> None:
    # What the stores keep (defaults filled in) is itself a valid job file.
    dumped = dump_definition(Job.model_validate(doc))
    note(json.dumps(dumped, indent=1))
    assert schema_errors(dumped) == []


@given(mutated_documents())
def test_model_and_schema_agree_on_mutated_documents(mutation: Mutation) -> None:
    note(mutation.description)
    note(json.dumps(mutation.document, indent=1))
    by_model, by_schema = model_errors(mutation.document), schema_errors(mutation.document)
    assert bool(by_model) == bool(by_schema), (
        f"{mutation.description}: model errors {by_model}, schema errors {by_schema}"
    )


@pytest.mark.parametrize(
    "weaken",
    [
        lambda schema: schema["properties"]["name"].pop("pattern"),
        lambda schema: schema["$defs"]["HttpConfig"].pop("additionalProperties"),
        lambda schema: schema.pop("additionalProperties"),
        lambda schema: schema["properties"]["steps"].pop("minItems"),
    ],
    ids=["name-pattern", "http-config-closed", "job-closed", "steps-not-empty"],
)
def test_mutations_find_a_planted_disagreement(weaken: Callable[[Doc], object]) -> None:
    # The agreement property above is only worth something if it can fail: drop one
    # constraint from the schema and the mutations must expose the difference.
    schema = copy.deepcopy(job_schema())
    weaken(schema)
    weak = jsonschema.Draft202012Validator(schema, format_checker=_format_checker())
    found = find(
        mutated_documents(),
        lambda m: bool(model_errors(m.document)) != bool(schema_errors(m.document, weak)),
        settings=settings(
            max_examples=1000, phases=[Phase.generate], derandomize=True, database=None
        ),
    )
    assert model_errors(found.document) != []


SFTP_KEYLESS = {
    "operation": "download",
    "host": "h",
    "remote_path": "r",
    "auth": {"type": "ssh_key", "username": "u"},
}
FILTER_STEP = {
    "operation": "read",
    "format": "csv",
    "source_path": "p",
    "transformations": [{"type": "filter", "condition": "amount >"}],
}
MODEL_ONLY = {
    "cron syntax": with_schedule(type="cron", expression="0 0 25 * * ?"),
    "timezone name": with_schedule(type="cron", expression="* * * * *", timezone="Mars/Base"),
    "end_at after start_at": with_schedule(
        type="fixed_rate",
        interval=60,
        start_at="2027-01-02T00:00:00Z",
        end_at="2027-01-01T00:00:00Z",
    ),
    "interval text under a second": with_schedule(type="fixed_delay", interval="500ms"),
    "ssh_key without a key": with_step(SFTP_KEYLESS, "sftp"),
    "ssh_key with both keys": with_step(
        {
            **SFTP_KEYLESS,
            "auth": {**SFTP_KEYLESS["auth"], "private_key": "k", "private_key_path": "p"},
        },
        "sftp",
    ),
    "filter condition syntax": with_step(FILTER_STEP, "file_processing"),
    "when condition syntax": minimal(
        steps=[{"id": "a", "type": "http", "when": "1 +", "config": {"url": "u"}}]
    ),
    "scheduled without a schedule": minimal(triggers={"scheduled": True}),
}


@pytest.mark.parametrize("doc", MODEL_ONLY.values(), ids=MODEL_ONLY.keys())
def test_semantic_checks_are_model_only(doc: Doc) -> None:
    assert model_errors(doc) != []
    assert schema_errors(doc) == []


COLUMN_MAPPING_BY_FIELD_NAME = {
    "operation": "read",
    "format": "csv",
    "source_path": "p",
    "transformations": [{"type": "column_mapping", "from_": "a", "to": "b"}],
}
FORMER_DISAGREEMENTS = [
    pytest.param(
        minimal(schema_="x"),
        id="field-name-schema_",
    ),
    pytest.param(
        with_step(COLUMN_MAPPING_BY_FIELD_NAME, "file_processing"),
        id="field-name-from_",
    ),
    pytest.param(
        minimal(timeout_seconds=30.0),
        id="integral-float-for-integer",
    ),
    pytest.param(
        minimal(variables={"A" * 129: 1}),
        id="variable-name-too-long",
    ),
    pytest.param(
        with_schedule(type="one_time", at="1700000000"),
        id="unix-timestamp-text",
    ),
    pytest.param(
        with_schedule(type="one_time", at="2029-12-31"),
        id="date-only",
    ),
    pytest.param(
        with_schedule(type="one_time", at="2029-12-31T23:00:00"),
        id="naive-date-time",
    ),
]


@pytest.mark.parametrize("doc", FORMER_DISAGREEMENTS)
def test_former_disagreements_agree(doc: Doc) -> None:
    by_model, by_schema = model_errors(doc), schema_errors(doc)
    assert bool(by_model) == bool(by_schema), (by_model, by_schema)


BOTH_REJECT = {
    "interval-number-under-a-second": with_schedule(type="fixed_rate", interval=0.5),
    "interval-number-negative": with_schedule(type="fixed_delay", interval=-5),
    **{
        f"interval-text-{text}": with_schedule(type="fixed_rate", interval=text)
        for text in ("1e3", "nan", "inf", "1_000", "+30", "30.", "-5", "5 x", "")
    },
    "at-as-unix-timestamp": with_schedule(type="one_time", at=1_700_000_000),
    "at-not-a-date": with_schedule(type="one_time", at="next tuesday"),
    "variables-bad-key": minimal(variables={"1x": 1}),
    "variables-nested-value": minimal(variables={"X": {"a": 1}}),
    "http-bad-status": with_step({"url": "u", "expected_status": [99]}, "http"),
    "delimiter-two-chars": with_step(
        {"operation": "read", "format": "csv", "source_path": "p", "delimiter": ";;"},
        "file_processing",
    ),
    "step-max-retries-over-20": minimal(
        steps=[{"id": "a", "type": "http", "max_retries": 21, "config": {"url": "u"}}]
    ),
}


@pytest.mark.parametrize("doc", BOTH_REJECT.values(), ids=BOTH_REJECT.keys())
def test_model_and_schema_both_reject(doc: Doc) -> None:
    # Regressions of disagreements fixed earlier, and edges the mutations rarely reach.
    assert model_errors(doc) != []
    assert schema_errors(doc) != []


def test_trailing_newline_in_a_pattern_is_a_validator_quirk() -> None:
    # Python's re (used by jsonschema) lets `$` match before a final newline; the
    # models (Rust regex) and ECMA-262 validators such as check-jsonschema do not.
    # Not a schema bug, so mutations never write a trailing newline.
    doc = minimal(name="job\n")
    assert model_errors(doc) != []
    assert schema_errors(doc) == []


# --- the example repository --------------------------------------------------------


def _plain(node: Any) -> Any:
    """YAML data as JSON data: timestamps become ISO-8601 strings."""
    if isinstance(node, datetime | date):
        return node.isoformat()
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def load_example(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return _plain(YAML(typ="safe").load(text))


def _examples() -> list[Any]:
    return [pytest.param(path, id=path.name) for path in EXAMPLE_JOBS]


def test_there_are_example_jobs() -> None:
    assert len(EXAMPLE_JOBS) >= 5
    assert {path.suffix for path in EXAMPLE_JOBS} >= {".yaml", ".json"}


@pytest.mark.parametrize("path", _examples())
def test_example_jobs_pass_the_schema(path: Path) -> None:
    doc = load_example(path)
    assert schema_errors(doc) == []
    assert model_errors(doc) == []


def _check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK_JSONSCHEMA.exists(), f"{CHECK_JSONSCHEMA} is missing: run `make setup`"
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA_FILE), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_jsonschema_accepts_the_example_jobs() -> None:
    result = _check_jsonschema(*EXAMPLE_JOBS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_rejects_a_broken_job(tmp_path: Path) -> None:
    good = EXAMPLE_JOBS[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "name: Broken Job\nsteps:\n  - id: a\n    type: http\n    config: {method: FETCH}\n",
        encoding="utf-8",
    )
    result = _check_jsonschema(good, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "broken.yaml" in result.stdout
    assert good.name not in result.stdout
