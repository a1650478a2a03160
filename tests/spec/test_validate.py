"""`vecron validate`: every class of problem, reported at the right file:line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from vecron.cli import main
from vecron.spec.validate import Diagnostic, validate_paths

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: good
schedule:
  type: cron
  expression: "0 0 2 ? * MON-FRI"
steps:
  - id: fetch
    type: http
    config:
      url: https://example.invalid/api
  - id: save
    type: database
    config:
      database_type: postgresql
      connection_string: "${secret:DB_URL}"
      query: INSERT INTO t (id) VALUES ({{steps.fetch.response.body.id}})
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def check(tmp_path: Path, text: str, name: str = "job.yaml") -> list[Diagnostic]:
    write(tmp_path, name, text)
    return validate_paths([tmp_path]).diagnostics


def only(diagnostics: list[Diagnostic], severity: str = "error") -> Diagnostic:
    matching = [d for d in diagnostics if d.severity == severity]
    assert len(matching) == 1, [str(d) for d in diagnostics]
    return matching[0]


def test_a_valid_job_has_no_findings(tmp_path: Path) -> None:
    assert check(tmp_path, GOOD) == []


def test_the_example_repository_is_clean() -> None:
    report = validate_paths([REPO / "jobs-example"])
    assert [str(d) for d in report.diagnostics] == []
    assert len(report.jobs) >= 5
    types = {step.type for job in report.jobs for step in job.steps}
    assert types == {"http", "database", "file_processing", "sftp"}
    assert any(job.webhook_enabled for job in report.jobs)
    assert any(job.scheduled for job in report.jobs)
    no_manual = ("event-cleanup", "partner-events")
    assert all(job.triggers.manual for job in report.jobs if job.name not in no_manual)


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    d = only(check(tmp_path, "name: x\nsteps: [\n  {id: a\n"))
    assert d.path.endswith("job.yaml")
    assert d.line >= 3
    assert "invalid YAML" in d.message


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    d = only(check(tmp_path, "name: a\nname: b\nsteps: []\n"))
    assert d.line == 2
    assert "duplicate key" in d.message


def test_json_duplicate_keys_and_syntax(tmp_path: Path) -> None:
    d = only(check(tmp_path, '{"name": "a",\n "name": "b"}', name="job.json"))
    assert d.line == 2
    assert "duplicate key" in d.message
    d = only(check(tmp_path / "x", '{"name": "a",\n "steps": [}', name="job.json"))
    assert (d.line, "invalid JSON" in d.message) == (2, True)


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    text = GOOD.replace("      url: https", "      urll: https")
    diagnostics = check(tmp_path, text)
    unknown = [d for d in diagnostics if "unknown field 'urll'" in d.message]
    assert len(unknown) == 1
    assert unknown[0].line == 9
    assert unknown[0].column == 7
    assert "did you mean 'url'" in unknown[0].message
    missing = [d for d in diagnostics if "missing required field 'url'" in d.message]
    assert len(missing) == 1
    assert missing[0].line == 8  # the `config:` key


def test_unknown_step_type(tmp_path: Path) -> None:
    d = only(check(tmp_path, GOOD.replace("type: http", "type: htp")))
    assert d.line == 7
    assert "unknown type 'htp'" in d.message
    assert "http, database, file_processing, sftp" in d.message


def test_wrong_value_type_names_field_and_value(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      url: https://example.invalid/api", "      url: x\n      timeout_seconds: soon"
    )
    d = only(check(tmp_path, text))
    assert d.line == 10
    assert "steps[0].config.timeout_seconds" in d.message
    assert "'soon'" in d.message


def test_step_ids_are_unique(tmp_path: Path) -> None:
    d = only(check(tmp_path, GOOD.replace("id: save", "id: fetch")))
    assert d.line == 10
    assert "duplicate step id 'fetch'" in d.message


def test_job_names_are_unique_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b/c.yaml", "# another\n" + GOOD)
    diagnostics = validate_paths([tmp_path]).diagnostics
    d = only(diagnostics)
    assert d.path.endswith("c.yaml")
    assert d.line == 2
    assert "already used by" in d.message
    assert "a.yaml" in d.message


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("steps.nope.output", "no step has id 'nope'"),
        ("steps.save.output", "cannot read its own output"),
        ("steps.fetch.body.id", "a step entry has no 'body'"),
        ("webhook.payload.id", "only in jobs whose webhook trigger is on"),
        ("env.HOME", "unknown root 'env'"),
        ("execution.nonsense", "execution has no 'nonsense'"),
        ("steps.fetch.response.body[", "reference"),
    ],
)
def test_references_point_at_earlier_steps_and_known_roots(
    tmp_path: Path, reference: str, expected: str
) -> None:
    text = GOOD.replace("steps.fetch.response.body.id", reference)
    d = only(check(tmp_path, text))
    assert d.line == 15
    assert expected in d.message


def test_a_step_cannot_read_itself_or_a_later_step(tmp_path: Path) -> None:
    text = GOOD.replace("https://example.invalid/api", "https://x/{{steps.fetch.output}}")
    d = only(check(tmp_path, text))
    assert d.line == 9
    assert "cannot read its own output" in d.message
    text = GOOD.replace("https://example.invalid/api", "https://x/{{steps.save.output.rows}}")
    d = only(check(tmp_path, text))
    assert d.line == 9
    assert "step 'save' runs after this one" in d.message


def test_webhook_references_need_the_trigger_and_listed_headers(tmp_path: Path) -> None:
    text = (
        GOOD.replace("steps.fetch.response.body.id", "webhook.headers.x-trace")
        + "triggers:\n  webhook: {secret: '${secret:HOOK}'}\n"
    )
    d = only(check(tmp_path, text), severity="warning")
    assert "not listed in triggers.webhook.headers" in d.message
    ok = text.replace(
        "{secret: '${secret:HOOK}'}", "{secret: '${secret:HOOK}', headers: [X-Trace]}"
    )
    assert check(tmp_path, ok) == []


def test_conditions_parse_in_the_safe_language(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - id: save\n", "  - id: save\n    when: \"__import__('os').system('x')\"\n"
    )
    d = only(check(tmp_path, text))
    assert d.line == 11
    assert "steps[1].when" in d.message


def test_condition_references_are_checked(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: save\n", "  - id: save\n    when: steps.later.output.n > 0\n")
    d = only(check(tmp_path, text))
    assert d.line == 11
    assert "no step has id 'later'" in d.message


def test_unknown_variables_warn_and_declared_ones_do_not(tmp_path: Path) -> None:
    text = GOOD.replace("https://example.invalid/api", "${API}/v1/${PATH_PART}")
    diagnostics = check(tmp_path, text + "variables: {PATH_PART: items}\n")
    d = only(diagnostics, severity="warning")
    assert "${API}" in d.message
    assert d.line == 9
    write(tmp_path, "variables.yaml", "API: https://api.example.invalid\n")
    assert validate_paths([tmp_path]).diagnostics == []


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("{type: cron, expression: '0 0 2 1 * MON'}", "restricts both day-of-month"),
        ("{type: cron, expression: '0 0 25 * * ?'}", "hour"),
        ("{type: cron, expression: '0 0 2 ? * MON', timezone: Mars/Olympus}", "unknown timezone"),
        ("{type: fixed_rate, interval: 5 parsecs}", "interval"),
        ("{type: fixed_rate, interval: 0}", "shorter than one second"),
        ("{type: one_time, at: 1700000000}", "ISO-8601"),
        (
            "{type: fixed_rate, interval: 5m, "
            "start_at: '2030-01-02T00:00:00', end_at: '2030-01-01T00:00:00'}",
            "end_at must be after start_at",
        ),
    ],
)
def test_schedules_are_checked(tmp_path: Path, schedule: str, expected: str) -> None:
    text = GOOD.replace(
        'schedule:\n  type: cron\n  expression: "0 0 2 ? * MON-FRI"\n', f"schedule: {schedule}\n"
    )
    d = only(check(tmp_path, text))
    assert d.line == 2
    assert expected in d.message


def test_schedule_without_schedule_trigger(tmp_path: Path) -> None:
    text = GOOD.replace(
        'schedule:\n  type: cron\n  expression: "0 0 2 ? * MON-FRI"\n',
        "triggers: {scheduled: true}\n",
    )
    assert "no schedule" in only(check(tmp_path, text)).message


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ('"${secret:DB_URL}"', "postgresql://app:hunter2@db/app", 14),
        ('"${secret:DB_URL}"', "host=db user=app password=hunter2", 14),
        (
            "      url: https://example.invalid/api\n",
            "      url: https://example.invalid/api\n      auth: {type: bearer, token: abc123}\n",
            10,
        ),
        (
            "      url: https://example.invalid/api\n",
            "      url: https://example.invalid/api\n      headers: {Authorization: Basic eDp5}\n",
            10,
        ),
    ],
)
def test_literal_secrets_warn(tmp_path: Path, old: str, new: str, line: int) -> None:
    d = only(check(tmp_path, GOOD.replace(old, new)), severity="warning")
    assert d.line == line
    assert "literal secret" in d.message
    assert "hunter2" not in d.message
    assert "abc123" not in d.message


def test_webhook_secret_literal_warns_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "job.yaml", GOOD + "triggers:\n  webhook: {secret: s3cr3t}\n")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ":17:" in out
    assert "warning: triggers.webhook.secret: literal secret" in out
    assert main(["validate", "--strict", str(tmp_path)]) == 1


def test_data_source_must_be_a_reference(tmp_path: Path) -> None:
    text = GOOD + (
        "  - id: out\n"
        "    type: file_processing\n"
        "    config: {operation: write, format: csv, destination_path: a.csv, data_source: rows}\n"
    )
    d = only(check(tmp_path, text))
    assert "data_source must be one reference" in d.message


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "not empty" in only(check(tmp_path, "# nothing\n")).message
    assert "not a list" in only(check(tmp_path / "l", "- a\n")).message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        GOOD.replace("type: http", "type: http\n    timeout_seconds: -1")
        .replace("steps.fetch.response.body.id", "steps.nope.x")
        .replace('"0 0 2 ? * MON-FRI"', '"0 0 2 ? * FUNDAY"')
    )
    diagnostics = check(tmp_path, text)
    assert len([d for d in diagnostics if d.severity == "error"]) == 3


def test_cli_formats_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.yaml", GOOD.replace("id: save", "id: fetch"))
    assert main(["validate", str(bad)]) == 1
    assert f"{bad}:10:9: error: steps[1].id: duplicate step id" in capsys.readouterr().out

    assert main(["validate", "--format", "json", str(bad)]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False
    assert document["diagnostics"][0]["line"] == 10
    assert document["diagnostics"][0]["field"] == "steps[1].id"

    assert main(["validate", "--format", "github", str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"::error file={bad},line=10,col=9,title=vecron::")

    assert main(["validate", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["validate", "--format", "xml", str(bad)]) == 2

    good = write(tmp_path / "g", "good.yaml", GOOD)
    assert main(["validate", str(good)]) == 0


def test_validate_as_a_subprocess(tmp_path: Path) -> None:
    import subprocess
    import sys

    write(tmp_path, "job.yaml", GOOD.replace("id: save", "id: fetch"))
    result = subprocess.run(
        [sys.executable, "-m", "vecron", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "job.yaml:10:9: error:" in result.stdout
    assert "1 error(s)" in result.stderr


def test_errors_inside_tagged_unions_name_the_real_path(tmp_path: Path) -> None:
    text = GOOD + (
        "  - id: up\n"
        "    type: sftp\n"
        "    config:\n"
        "      operation: upload\n"
        "      host: h\n"
        "      remote_path: /in/\n"
        "      source_path: a.csv\n"
        "      auth:\n"
        "        type: password\n"
        "        password: ${secret:PW}\n"
    )
    d = only(check(tmp_path, text))
    assert d.message == "steps[2].config.auth: missing required field 'username'"
    assert d.line == 23


def test_variables_files_and_files_folders_are_skipped_at_any_depth(tmp_path: Path) -> None:
    write(tmp_path, "repo/jobs/a.yaml", GOOD)
    write(tmp_path, "repo/variables.yaml", "X: 1\n")
    write(tmp_path, "repo/files/data.json", '{"not": "a job"}')
    write(tmp_path, "repo/jobs/files/nested.yaml", "- not a job\n")
    report = validate_paths([tmp_path])
    assert [str(d) for d in report.diagnostics] == []
    assert [Path(f.path).name for f in report.files] == ["a.yaml", "variables.yaml"]


def test_filter_conditions_references_are_checked(tmp_path: Path) -> None:
    text = GOOD + (
        "  - id: read\n"
        "    type: file_processing\n"
        "    config:\n"
        "      operation: read\n"
        "      format: csv\n"
        "      source_path: a.csv\n"
        "      transformations:\n"
        "        - {type: filter, condition: 'amount > {{steps.later.output.n}}'}\n"
        "        - {type: select, columns: ['{{job.name}}']}\n"
    )
    diagnostics = [d for d in check(tmp_path, text) if d.severity == "error"]
    messages = sorted(d.message for d in diagnostics)
    assert len(messages) == 2
    assert "no step has id 'later'" in messages[0]
    assert "transformations take literal values" in messages[1]
    assert {d.line for d in diagnostics} == {23, 24}


def test_undeclared_variables_reference_warns(tmp_path: Path) -> None:
    text = GOOD.replace("https://example.invalid/api", "https://x/{{variables.REGION}}")
    d = only(check(tmp_path, text), severity="warning")
    assert "{{variables.REGION}} is not declared" in d.message
    assert check(tmp_path, text + "variables: {REGION: eu}\n") == []


@pytest.mark.parametrize(
    ("query", "warns"),
    [
        ("SELECT * FROM t WHERE name = '{{steps.fetch.response.body.id}}'", True),
        ("SELECT 'a' || {{steps.fetch.response.body.id}} || 'b'", False),
        ("SELECT 'it''s' AS x, {{steps.fetch.response.body.id}}", False),
        ("SELECT * FROM t WHERE name LIKE '%${secret:X}%'", True),
    ],
)
def test_references_inside_quoted_sql_warn(tmp_path: Path, query: str, warns: bool) -> None:
    text = GOOD.replace(
        "INSERT INTO t (id) VALUES ({{steps.fetch.response.body.id}})", f'"{query}"'
    )
    warnings = [d for d in check(tmp_path, text) if d.severity == "warning"]
    assert len(warnings) == int(warns)
    if warns:
        assert "inside a quoted SQL literal" in warnings[0].message


def test_secret_looking_names_are_whole_words(tmp_path: Path) -> None:
    variables = "variables: {BYPASS_MODE: 'on', PASSENGERS: '3', DB_PASSWORD: hunter2}\n"
    d = only(check(tmp_path, GOOD + variables), severity="warning")
    assert "variables.DB_PASSWORD: literal secret" in d.message


def test_passwords_in_header_values_and_variable_files_warn(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      url: https://example.invalid/api\n",
        "      url: https://example.invalid/api\n      headers: {X-Upstream: 'https://u:pw1@h/'}\n",
    )
    write(tmp_path, "job.yaml", text)
    write(tmp_path, "variables.yaml", "API_TOKEN: abc\nREGION: eu\n")
    diagnostics = validate_paths([tmp_path]).diagnostics
    assert [(Path(d.path).name, d.line, d.severity) for d in diagnostics] == [
        ("job.yaml", 10, "warning"),
        ("variables.yaml", 1, "warning"),
    ]
    assert "pw1" not in diagnostics[0].message
    assert "API_TOKEN: literal secret" in diagnostics[1].message


def test_a_plain_variable_holding_a_secret_warns(tmp_path: Path) -> None:
    text = GOOD.replace('"${secret:DB_URL}"', '"${DB_URL}"') + (
        "variables: {DB_URL: 'postgresql://app:hunter2@db/app'}\n"
    )
    warnings = [d for d in check(tmp_path, text) if d.severity == "warning"]
    assert len(warnings) == 2  # the literal in variables, and its use as a connection string
    assert any("${DB_URL} holds a literal value" in d.message for d in warnings)


def test_bad_variables_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "job.yaml", GOOD)
    write(tmp_path, "variables.yaml", "GOOD: 1\nbad-name: 2\nLIST: [1, 2]\n")
    errors = [d for d in validate_paths([tmp_path]).diagnostics if d.severity == "error"]
    assert [(Path(d.path).name, d.line) for d in errors] == [
        ("variables.yaml", 2),
        ("variables.yaml", 3),
    ]


def test_suggestions_come_from_the_model_at_that_place(tmp_path: Path) -> None:
    text = GOOD.replace("      url: https://example.invalid/api\n", "      url: x\n      a: 1\n")
    d = only(check(tmp_path, text))
    assert d.message == "steps[0].config: unknown field 'a'"
    text = GOOD.replace("max_rows", "x").replace("      query: ", "      qeury: ")
    assert "did you mean 'query'" in " ".join(d.message for d in check(tmp_path, text))


@pytest.mark.parametrize("interval", [".nan", ".inf", "'1e3'", "'1_0'", "-5"])
def test_intervals_must_be_finite_plain_numbers_or_durations(tmp_path: Path, interval: str) -> None:
    text = GOOD.replace(
        'schedule:\n  type: cron\n  expression: "0 0 2 ? * MON-FRI"\n',
        f"schedule: {{type: fixed_rate, interval: {interval}}}\n",
    )
    assert "schedule.interval" in only(check(tmp_path, text)).message


def test_yaml_dates_are_instants_at_midnight(tmp_path: Path) -> None:
    text = GOOD.replace('"0 0 2 ? * MON-FRI"\n', '"0 0 2 ? * MON-FRI"\n  end_at: 2030-12-31\n')
    assert check(tmp_path, text) == []


def test_step_retries_are_capped(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: save\n", "  - id: save\n    max_retries: 21\n")
    assert "steps[1].max_retries" in only(check(tmp_path, text)).message


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      url: https://example.invalid/api\n",
        "      url: https://example.invalid/api\n"
        "      auth: {type: basic, username: u, password: 98765432}\n",
    )
    d = only(check(tmp_path, text))
    assert "steps[0].config.auth.password" in d.message
    assert "98765432" not in d.message
    assert "not shown" in d.message
