"""Redaction: every literal secret becomes a placeholder; names, idempotence, properties."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.spec.strategies import job_documents
from vecron.spec.models import Job, dump_definition
from vecron.spec.sensitive import find_sensitive
from vecron.spec.validate import check_document, format_loc
from vecron.transfer.formats import dumps
from vecron.transfer.redact import (
    SECRET_REFERENCE,
    compile_pattern,
    fill_secrets,
    redact,
    secret_name,
)

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _job(**config: Any) -> dict[str, Any]:
    return dump_definition(
        Job.model_validate(
            {"name": "invoice-import", "steps": [{"id": "call", "type": "http", "config": config}]}
        )
    )


def recovered_secrets(original: Any, redacted: Any) -> dict[str, str]:
    """The value each placeholder replaced, found by lining up the two documents."""
    values: dict[str, str] = {}
    if isinstance(original, dict) and isinstance(redacted, dict):
        for key in original:
            values.update(recovered_secrets(original[key], redacted[key]))
    elif isinstance(original, list) and isinstance(redacted, list):
        for a, b in zip(original, redacted, strict=True):
            values.update(recovered_secrets(a, b))
    elif _is_number(original) and isinstance(redacted, str):
        match = SECRET_REFERENCE.fullmatch(redacted)
        assert match is not None
        values[match[1]] = str(original)
    elif isinstance(original, str) and isinstance(redacted, str) and original != redacted:
        match = SECRET_REFERENCE.search(redacted)
        assert match is not None
        before, after = redacted[: match.start()], redacted[match.end() :]
        assert original.startswith(before)
        assert original.endswith(after)
        values[match[1]] = original[len(before) : len(original) - len(after)]
    return values


def textual(original: Any, redacted: Any) -> Any:
    """``original`` with each redacted number as text: what a restored job holds."""
    if isinstance(original, dict) and isinstance(redacted, dict):
        return {key: textual(value, redacted[key]) for key, value in original.items()}
    if isinstance(original, list) and isinstance(redacted, list):
        return [textual(a, b) for a, b in zip(original, redacted, strict=True)]
    if _is_number(original) and isinstance(redacted, str):
        return str(original)
    return original


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_a_literal_secret_becomes_a_placeholder_named_after_job_step_and_field() -> None:
    job = _job(
        url="https://x.example/api",
        auth={"type": "basic", "username": "bob", "password": "hunter2"},
    )
    result = redact(job)
    auth = result.definition["steps"][0]["config"]["auth"]
    assert auth["password"] == "${secret:INVOICE_IMPORT_CALL_AUTH_PASSWORD}"
    assert auth["username"] == "bob"
    assert result.redacted == {"steps[0].config.auth.password": "INVOICE_IMPORT_CALL_AUTH_PASSWORD"}
    assert [p.name for p in result.placeholders] == ["INVOICE_IMPORT_CALL_AUTH_PASSWORD"]
    assert "hunter2" not in dumps(result.definition, "json").decode()


def test_only_the_password_part_of_a_url_is_replaced() -> None:
    result = redact(_job(url="https://bob:s3cr3t@x.example/api?q=1"))
    url = result.definition["steps"][0]["config"]["url"]
    assert url == "https://bob:${secret:INVOICE_IMPORT_CALL_URL_PASSWORD}@x.example/api?q=1"


def test_existing_placeholders_and_references_are_kept() -> None:
    job = _job(
        url="https://x.example/{{execution.id}}",
        headers={"Authorization": "Bearer ${secret:PARTNER_TOKEN}", "X-Api-Key": "${KEY}"},
        auth={"type": "bearer", "token": "{{steps.login.output.token}}"},
    )
    result = redact(job)
    assert result.definition == job
    assert result.redacted == {}
    assert [p.name for p in result.placeholders] == ["PARTNER_TOKEN"]


def test_a_derived_name_never_reuses_a_name_the_job_already_has() -> None:
    job = _job(
        url="https://x.example/",
        headers={"Authorization": "${secret:INVOICE_IMPORT_CALL_HEADERS_AUTHORIZATION}"},
        body={"headers": {"Authorization": "literal-one"}},
    )
    # The key pattern makes the body's Authorization a secret too: it needs a name of its
    # own, never the one the header already uses for another value.
    result = redact(job, key_pattern=compile_pattern("^authorization$"))
    body = result.definition["steps"][0]["config"]["body"]["headers"]["Authorization"]
    assert body == "${secret:INVOICE_IMPORT_CALL_BODY_HEADERS_AUTHORIZATION}"
    assert [p.name for p in result.placeholders] == [
        "INVOICE_IMPORT_CALL_BODY_HEADERS_AUTHORIZATION",
        "INVOICE_IMPORT_CALL_HEADERS_AUTHORIZATION",
    ]


def test_a_clash_gets_a_numbered_name() -> None:
    job = _job(
        url="https://x.example/",
        headers={"Authorization": "literal-a"},
        body={"password": "${secret:INVOICE_IMPORT_CALL_HEADERS_AUTHORIZATION}"},
    )
    result = redact(job)
    header = result.definition["steps"][0]["config"]["headers"]["Authorization"]
    assert header == "${secret:INVOICE_IMPORT_CALL_HEADERS_AUTHORIZATION_2}"


def test_the_key_pattern_adds_keys_and_is_case_insensitive() -> None:
    job = _job(url="https://x.example/", body={"Account_PIN": "1234-5678", "note": "hi"})
    assert redact(job).redacted == {}
    result = redact(job, key_pattern=compile_pattern("pin$"))
    body = result.definition["steps"][0]["config"]["body"]
    assert body == {"Account_PIN": "${secret:INVOICE_IMPORT_CALL_BODY_ACCOUNT_PIN}", "note": "hi"}


def test_a_bad_pattern_is_a_usage_error_naming_it() -> None:
    import pytest

    from vecron.errors import UsageError

    with pytest.raises(UsageError, match=r"invalid redaction pattern '\('"):
        compile_pattern("(")


def test_a_number_under_a_secret_key_is_redacted_and_comes_back_as_text() -> None:
    job = _job(url="https://x.example/", body={"token": 739184625031, "count": 3})
    job["variables"] = {"DB_PASSWORD": 4242, "RETRIES": 3}
    result = redact(job)
    assert result.definition["variables"] == {
        "DB_PASSWORD": "${secret:INVOICE_IMPORT_DB_PASSWORD}",
        "RETRIES": 3,
    }
    body = result.definition["steps"][0]["config"]["body"]
    assert body == {"token": "${secret:INVOICE_IMPORT_CALL_BODY_TOKEN}", "count": 3}
    assert b"739184625031" not in dumps(result.definition, "json")
    values = recovered_secrets(job, result.definition)
    assert values == {
        "INVOICE_IMPORT_DB_PASSWORD": "4242",
        "INVOICE_IMPORT_CALL_BODY_TOKEN": "739184625031",
    }


def test_names_are_valid_variable_names_even_for_long_or_odd_job_names() -> None:
    assert secret_name("1st.job-x", ["step", "password"]) == "_1ST_JOB_X_STEP_PASSWORD"
    long = secret_name("a" * 128, ["b" * 60, "password"])
    assert NAME.match(long)
    assert long != secret_name("a" * 128, ["b" * 61, "password"])  # a digest keeps them apart
    assert secret_name("job", ["call", "connection_string"], partial=True) == (
        "JOB_CALL_CONNECTION_STRING_PASSWORD"
    )


@given(job_documents(), st.one_of(st.none(), st.sampled_from(["name$", "^id$", "user"])))
def test_redaction_leaves_no_literal_secret_and_is_idempotent(
    document: dict[str, Any], pattern: str | None
) -> None:
    definition = dump_definition(Job.model_validate(document))
    key_pattern = compile_pattern(pattern)
    once = redact(definition, key_pattern=key_pattern)
    assert not [s for s in find_sensitive(once.definition, key_pattern=key_pattern) if s.is_literal]
    twice = redact(once.definition, key_pattern=key_pattern)
    assert twice.definition == once.definition
    assert twice.placeholders == once.placeholders
    assert twice.redacted == {}
    for placeholder in once.placeholders:
        assert NAME.match(placeholder.name)


@given(job_documents())
def test_a_redacted_job_is_valid_and_its_secrets_give_back_the_original(
    document: dict[str, Any],
) -> None:
    definition = dump_definition(Job.model_validate(document))
    result = redact(definition)
    job, findings = check_document(result.definition)
    assert job is not None, [f.message for f in findings if f.severity == "error"]
    values = recovered_secrets(definition, result.definition)
    assert set(values) == set(result.redacted.values())
    assert fill_secrets(result.definition, values) == textual(definition, result.definition)
    for field, name in result.redacted.items():
        assert name in values, field
    assert {format_loc(s.loc) for s in find_sensitive(definition) if s.is_literal} == set(
        result.redacted
    )


@given(job_documents())
def test_redaction_is_deterministic(document: dict[str, Any]) -> None:
    definition = dump_definition(Job.model_validate(document))
    first, second = redact(definition), redact(dump_definition(Job.model_validate(document)))
    assert dumps(first.definition, "json") == dumps(second.definition, "json")
    assert dumps(first.definition, "yaml") == dumps(second.definition, "yaml")
