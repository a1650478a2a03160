"""The job models: round trips, defaults, strictness and the validators of one model."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import Phase, find, given, note, settings
from pydantic import ValidationError

from tests.spec.strategies import STEP_TYPES, Doc, job_documents
from vecron.spec.models import (
    FixedDelaySchedule,
    FixedRateSchedule,
    HttpConfig,
    Job,
    OneTimeSchedule,
    SftpKeyAuth,
    dump_definition,
)
from vecron.spec.validate import check_document


def minimal(**changes: Any) -> Doc:
    doc: Doc = {"name": "job", "steps": [{"id": "a", "type": "http", "config": {"url": "u"}}]}
    return doc | changes


def with_config(step_type: str, config: Doc, **step: Any) -> Doc:
    return minimal(steps=[{"id": "a", "type": step_type, "config": config, **step}])


SFTP = {"operation": "download", "host": "h", "remote_path": "/in/*.csv"}
PASSWORD = {"type": "password", "username": "u", "password": "${secret:P}"}


def errors(doc: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        Job.model_validate(doc)
    return caught.value.errors(include_url=False)


def accepts(doc: Any) -> bool:
    try:
        Job.model_validate(doc)
    except ValidationError:
        return False
    return True


def error_types(doc: Any) -> set[str]:
    return {error["type"] for error in errors(doc)}


# --- round trips -------------------------------------------------------------------


@given(job_documents())
def test_models_round_trip_through_json(doc: Doc) -> None:
    note(json.dumps(doc, indent=1))
    job = Job.model_validate(doc)
    dumped = dump_definition(job)
    again = Job.model_validate(json.loads(json.dumps(dumped)))
    # `$schema` is for editors; the stored definition leaves it out on purpose.
    assert again == job.model_copy(update={"schema_": None})
    assert dump_definition(again) == dumped


@given(job_documents())
def test_dumping_fills_in_defaults_and_keeps_given_values(doc: Doc) -> None:
    dumped = dump_definition(Job.model_validate(doc))
    assert "$schema" not in dumped
    assert dumped["name"] == doc["name"]
    assert [step["id"] for step in dumped["steps"]] == [step["id"] for step in doc["steps"]]
    assert dumped["timeout_seconds"] == doc.get("timeout_seconds", 3600)
    assert dumped["variables"] == doc.get("variables", {})
    for step, given_step in zip(dumped["steps"], doc["steps"], strict=True):
        for key, value in given_step["config"].items():
            if key not in ("auth", "transformations"):  # these gain defaults inside
                assert step["config"][key] == value, key


@given(job_documents())
def test_generated_documents_have_no_validation_errors(doc: Doc) -> None:
    # The strategies promise documents that every layer accepts, not only the models.
    job, findings = check_document(doc)
    assert [f.message for f in findings if f.severity == "error"] == []
    assert job is not None


Predicate = Callable[[Doc], bool]


def _configs(doc: Doc, step_type: str) -> list[Doc]:
    return [step["config"] for step in doc["steps"] if step["type"] == step_type]


def _has_step(kind: str) -> Predicate:
    return lambda doc: bool(_configs(doc, kind))


def _has_http_auth(kind: str) -> Predicate:
    return lambda doc: any((c.get("auth") or {}).get("type") == kind for c in _configs(doc, "http"))


def _has_body(kind: type) -> Predicate:
    return lambda doc: any(isinstance(c.get("body"), kind) for c in _configs(doc, "http"))


def _has_sftp(operation: str, auth: str) -> Predicate:
    return lambda doc: any(
        c["operation"] == operation and c["auth"]["type"] == auth for c in _configs(doc, "sftp")
    )


def _has_transformation(kind: str) -> Predicate:
    return lambda doc: any(
        t["type"] == kind
        for c in _configs(doc, "file_processing")
        for t in c.get("transformations", [])
    )


def _schedule(doc: Doc) -> Doc:
    return doc.get("schedule") or {}


VARIANTS: dict[str, Predicate] = {
    **{f"step {kind}": _has_step(kind) for kind in STEP_TYPES},
    **{f"http auth {kind}": _has_http_auth(kind) for kind in ("basic", "bearer", "oauth2")},
    **{f"http body {kind.__name__}": _has_body(kind) for kind in (str, dict, list)},
    **{
        f"sftp {operation} {auth}": _has_sftp(operation, auth)
        for operation in ("download", "upload")
        for auth in ("password", "ssh_key")
    },
    **{
        f"transformation {kind}": _has_transformation(kind)
        for kind in ("column_mapping", "type_conversion", "filter", "select")
    },
    "file read": lambda doc: any(
        c["operation"] == "read" for c in _configs(doc, "file_processing")
    ),
    "file write": lambda doc: any(
        c["operation"] == "write" for c in _configs(doc, "file_processing")
    ),
    **{
        f"schedule {kind}": lambda doc, kind=kind: _schedule(doc).get("type") == kind
        for kind in ("cron", "fixed_rate", "fixed_delay", "one_time")
    },
    "interval text": lambda doc: isinstance(_schedule(doc).get("interval"), str),
    "interval number": lambda doc: isinstance(_schedule(doc).get("interval"), int | float),
    "start_at and end_at": lambda doc: {"start_at", "end_at"} <= _schedule(doc).keys(),
    "webhook": lambda doc: "webhook" in doc.get("triggers", {}),
    "variables": lambda doc: bool(doc.get("variables")),
    "labels": lambda doc: bool(doc.get("labels")),
    "when": lambda doc: any("when" in step for step in doc["steps"]),
    "three steps": lambda doc: len(doc["steps"]) >= 3,
}


def test_strategies_reach_every_variant() -> None:
    """Each variant the model knows is generated. One pass of 300 examples sees most of
    them; ``find`` then searches for any it missed (which variants one pass sees
    depends on what ran before it in the process)."""
    seen: set[str] = set()

    @settings(max_examples=300, phases=[Phase.generate], derandomize=True, database=None)
    @given(job_documents())
    def collect(doc: Doc) -> None:
        seen.update(label for label, predicate in VARIANTS.items() if predicate(doc))

    collect()
    for variant in sorted(VARIANTS.keys() - seen):
        found = find(
            job_documents(),
            VARIANTS[variant],
            settings=settings(max_examples=3000, database=None),
        )
        assert VARIANTS[variant](found)


# --- defaults ----------------------------------------------------------------------


def test_schedule_timezone_defaults_to_ho_chi_minh() -> None:
    job = Job.model_validate(minimal(schedule={"type": "cron", "expression": "0 0 * * *"}))
    assert job.schedule is not None
    assert job.schedule.timezone == "Asia/Ho_Chi_Minh"


def test_without_triggers_a_job_with_a_schedule_is_scheduled() -> None:
    job = Job.model_validate(minimal(schedule={"type": "fixed_rate", "interval": "30s"}))
    assert job.scheduled is True
    assert job.triggers.manual is True
    assert job.webhook_enabled is False
    assert job.triggers.webhook is None


def test_without_triggers_a_job_without_a_schedule_is_manual_only() -> None:
    job = Job.model_validate(minimal())
    assert job.scheduled is False
    assert job.triggers.manual is True
    assert job.webhook_enabled is False


@pytest.mark.parametrize(
    ("triggers", "has_schedule", "scheduled"),
    [
        ({"scheduled": False}, True, False),
        ({"scheduled": True}, True, True),
        ({"scheduled": None}, True, True),
        ({"scheduled": False}, False, False),
        ({"manual": False}, True, True),
    ],
)
def test_triggers_scheduled(triggers: Doc, has_schedule: bool, scheduled: bool) -> None:
    schedule = {"schedule": {"type": "one_time", "at": "2030-01-01T00:00:00Z"}}
    job = Job.model_validate(minimal(triggers=triggers, **(schedule if has_schedule else {})))
    assert job.scheduled is scheduled


def test_webhook_block_defaults_to_enabled() -> None:
    job = Job.model_validate(minimal(triggers={"webhook": {}}))
    assert job.webhook_enabled is True
    assert job.triggers.webhook is not None
    assert job.triggers.webhook.rate_limit == 60
    assert job.triggers.webhook.schemes == ["vecron"]
    off = Job.model_validate(minimal(triggers={"webhook": {"enabled": False}}))
    assert off.webhook_enabled is False


def test_http_defaults() -> None:
    job = Job.model_validate(minimal())
    config = job.steps[0].config
    assert isinstance(config, HttpConfig)
    assert config.method == "GET"
    assert config.expected_status is None
    assert config.timeout_seconds == 30
    assert config.body is None
    assert config.auth is None


def test_database_max_rows_defaults_to_10000() -> None:
    job = Job.model_validate(
        with_config("database", {"database_type": "sqlite", "connection_string": "x", "query": "q"})
    )
    assert job.steps[0].config.max_rows == 10_000  # type: ignore[union-attr]


def test_sftp_defaults() -> None:
    job = Job.model_validate(with_config("sftp", {**SFTP, "auth": PASSWORD}))
    config = job.steps[0].config
    assert config.port == 22  # type: ignore[union-attr]
    assert config.verify_host_key is True  # type: ignore[union-attr]


def test_job_defaults() -> None:
    job = Job.model_validate(minimal())
    assert (job.enabled, job.allow_concurrent, job.timeout_seconds, job.max_retries) == (
        True,
        False,
        3600,
        0,
    )
    assert (job.description, job.labels, job.variables, job.schedule) == ("", {}, {}, None)


# --- strictness --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        (minimal(timeout_seconds="30"), "int_type"),
        (minimal(max_retries="3"), "int_type"),
        (minimal(timeout_seconds=1.5), "int_type"),
        (minimal(enabled="yes"), "bool_type"),
        (minimal(allow_concurrent=1), "bool_type"),
        (minimal(triggers={"manual": "true"}), "bool_type"),
        (with_config("http", {"url": "u", "timeout_seconds": "30"}), "float_type"),
        (with_config("http", {"url": "u", "verify_tls": "no"}), "bool_type"),
        (with_config("sftp", {**SFTP, "auth": PASSWORD, "port": "22"}), "int_type"),
        (with_config("http", {"url": "u", "expected_status": ["200"]}), "int_type"),
        (minimal(description=5), "string_type"),
    ],
)
def test_models_are_strict(doc: Doc, kind: str) -> None:
    assert kind in error_types(doc)


@pytest.mark.parametrize(
    "doc",
    [
        minimal(enable=True),
        minimal(steps=[{"id": "a", "type": "http", "config": {"url": "u"}, "retries": 1}]),
        with_config("http", {"url": "u", "methd": "GET"}),
        with_config("sftp", {**SFTP, "auth": {**PASSWORD, "key": "k"}}),
        minimal(schedule={"type": "cron", "expression": "* * * * *", "tz": "UTC"}),
        minimal(triggers={"webhook": {"secrets": "x"}}),
    ],
)
def test_unknown_keys_are_rejected(doc: Doc) -> None:
    assert "extra_forbidden" in error_types(doc)


def test_models_are_frozen() -> None:
    job = Job.model_validate(minimal(schedule={"type": "fixed_rate", "interval": 60}))
    with pytest.raises(ValidationError, match="frozen"):
        job.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        job.steps[0].config.url = "other"  # type: ignore[misc,union-attr]
    with pytest.raises(ValidationError, match="frozen"):
        job.triggers.manual = False  # type: ignore[misc]
    assert job.name == "job"


# --- validators of one model -------------------------------------------------------


def _ssh(**keys: str) -> Doc:
    return with_config("sftp", {**SFTP, "auth": {"type": "ssh_key", "username": "u", **keys}})


@pytest.mark.parametrize(
    "keys",
    [{"private_key": "${secret:K}"}, {"private_key_path": "/keys/id_ed25519"}],
)
def test_ssh_key_auth_takes_one_key(keys: dict[str, str]) -> None:
    auth = Job.model_validate(_ssh(**keys)).steps[0].config.auth  # type: ignore[union-attr]
    assert isinstance(auth, SftpKeyAuth)


@pytest.mark.parametrize(
    "keys", [{}, {"private_key": "k", "private_key_path": "p"}], ids=["none", "both"]
)
def test_ssh_key_auth_needs_exactly_one_key(keys: dict[str, str]) -> None:
    assert any("exactly one" in error["msg"] for error in errors(_ssh(**keys)))


def _window(start_at: str, end_at: str, timezone: str = "UTC") -> Doc:
    schedule = {"type": "fixed_rate", "interval": 60, "timezone": timezone}
    return minimal(schedule=schedule | {"start_at": start_at, "end_at": end_at})


@pytest.mark.parametrize(
    ("start_at", "end_at"),
    [
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("2030-01-02T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("2030-01-01T08:00:00+07:00", "2030-01-01T01:00:00Z"),  # the same instant
    ],
)
def test_end_at_must_be_after_start_at(start_at: str, end_at: str) -> None:
    assert any(
        "end_at must be after start_at" in e["msg"] for e in errors(_window(start_at, end_at))
    )


def test_end_at_after_start_at_compares_instants() -> None:
    # 08:00 in Ho Chi Minh City (naive, read in the schedule's timezone) is 01:00 UTC.
    ok = _window("2030-01-01T08:00:00", "2030-01-01T01:00:01Z", timezone="Asia/Ho_Chi_Minh")
    schedule = Job.model_validate(ok).schedule
    assert isinstance(schedule, FixedRateSchedule)
    assert schedule.end_at == datetime(2030, 1, 1, 1, 0, 1, tzinfo=UTC)
    bad = _window("2030-01-01T08:00:00", "2030-01-01T00:59:59Z", timezone="Asia/Ho_Chi_Minh")
    assert any("end_at must be after start_at" in e["msg"] for e in errors(bad))


@pytest.mark.parametrize("interval", [1, 1.0, "1s", "1000ms", "0.5s 500ms", "1h30m", " 2 h "])
def test_interval_of_at_least_one_second(interval: float | str) -> None:
    job = Job.model_validate(minimal(schedule={"type": "fixed_delay", "interval": interval}))
    assert isinstance(job.schedule, FixedDelaySchedule)
    assert job.schedule.interval == interval


@pytest.mark.parametrize("interval", [0, 0.999, -1, "999ms", "0s", "0.5s", "nan", "inf", True])
def test_interval_under_one_second_is_rejected(interval: float | str) -> None:
    assert errors(minimal(schedule={"type": "fixed_rate", "interval": interval}))


def _at(value: Any) -> Doc:
    return minimal(schedule={"type": "one_time", "at": value})


@pytest.mark.parametrize("value", [1_700_000_000, 1_700_000_000.5, True, None, [2030]])
def test_one_time_at_rejects_what_is_not_a_date_time(value: Any) -> None:
    assert errors(_at(value))


def test_one_time_at_takes_iso_8601_text_and_yaml_timestamps() -> None:
    from_text = Job.model_validate(_at("2030-01-01T09:30:00+07:00")).schedule
    from_yaml = Job.model_validate(_at(datetime(2030, 1, 1, 2, 30, tzinfo=UTC))).schedule
    assert isinstance(from_text, OneTimeSchedule)
    assert isinstance(from_yaml, OneTimeSchedule)
    assert from_text.at == from_yaml.at


def test_one_time_at_rejects_a_unix_timestamp_as_text() -> None:
    assert not accepts(_at("1700000000"))
