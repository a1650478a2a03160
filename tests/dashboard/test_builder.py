"""The job builder: form and document round trips, the validator's own messages, and
its routes (preview, step edits, download, export, import)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dashboard.harness import csrf_of, dashboard, login
from vecron.dashboard.builder import DEFAULT_FORM, document_from_form
from vecron.dashboard.builder_io import (
    build,
    edit_steps,
    export_json,
    form_from_document,
    references,
)
from vecron.spec.loader import load_text
from vecron.spec.models import Job, dump_definition
from vecron.spec.validate import validate_paths

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "jobs-example" / "jobs").iterdir())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_job_goes_through_the_form_unchanged(path: Path) -> None:
    data = load_text(path.read_text(), json_file=path.suffix == ".json")
    form, problems = form_from_document(data)
    assert problems == []
    document, problems = document_from_form(form)
    assert problems == []
    assert dump_definition(Job.model_validate(document)) == dump_definition(
        Job.model_validate(data)
    )
    # And the form of the document is the same form: the fields are stable.
    assert form_from_document(document)[0] == form


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_the_builders_messages_are_vecron_validates(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = {
        **DEFAULT_FORM,
        "name": "Bad Name",
        "schedule_expression": "0 0 25 * * ?",
        "step-1-id": "second",
        "step-1-type": "http",
        "step-1-url": "{{steps.nope.output.body}}",
        "step-1-method": "TRACE",
    }
    built = build(form, fmt=fmt)
    assert not built.valid
    monkeypatch.chdir(tmp_path)
    Path(built.filename).write_text(built.text, encoding="utf-8")
    expected = [str(d) for d in validate_paths([Path(built.filename)]).diagnostics]
    assert expected
    assert sorted(str(d) for d in built.diagnostics) == sorted(expected)
    assert built.schedule_error is not None or built.fires == []


def test_a_valid_form_and_its_schedule_preview() -> None:
    built = build({**DEFAULT_FORM, "schedule_timezone": "Europe/Paris"})
    assert built.valid, built.diagnostics
    assert built.schedule_words == "at 02:00:00, Monday through Friday (Europe/Paris)"
    assert len(built.fires) == 5
    assert all(fire.astimezone(built.fires[0].tzinfo).weekday() < 5 for fire in built.fires)
    assert built.text.startswith("name: my-job\n")
    interval = build({**DEFAULT_FORM, "schedule_type": "fixed_rate", "schedule_interval": "5m"})
    assert interval.schedule_words == "every 5m (Europe/Paris)".replace(
        "Europe/Paris", "Asia/Ho_Chi_Minh"
    )
    assert (interval.fires[1] - interval.fires[0]).total_seconds() == 300
    unreadable = build({**DEFAULT_FORM, "step-0-extra": "a: [", "variables": "oops"})
    assert any("more config" in p for p in unreadable.problems)
    assert any("variables, line 1" in p for p in unreadable.problems)


def test_a_schedule_chosen_later_fires_unless_unticked() -> None:
    chosen = {**DEFAULT_FORM, "trigger_scheduled": ""}  # the box was not on the page
    assert "triggers" not in document_from_form(chosen)[0]
    unticked = {**chosen, "trigger_scheduled_shown": "1"}
    assert document_from_form(unticked)[0]["triggers"] == {"scheduled": False}
    form, _ = form_from_document(document_from_form(unticked)[0])
    assert document_from_form(form)[0]["triggers"] == {"scheduled": False}


def test_the_export_lists_the_secrets_the_job_needs() -> None:
    form = {
        **DEFAULT_FORM,
        "step-0-auth_type": "basic",
        "step-0-auth_username": "me",
        "step-0-auth_password": "${secret:API_PASSWORD}",
        "step-0-headers": "X-Key: ${secret:API_KEY}",
    }
    exported = json.loads(export_json(document_from_form(form)[0], exported_by="me"))
    assert exported["placeholders"] == [
        {"name": "API_KEY", "fields": ["steps[0].config.headers.X-Key"]},
        {"name": "API_PASSWORD", "fields": ["steps[0].config.auth.password"]},
    ]
    assert set(exported["metadata"]) >= {"export_date", "exported_by", "system_version"}
    assert form_from_document(exported)[0] == form_from_document(document_from_form(form)[0])[0]


def test_step_edits_and_the_reference_picker() -> None:
    form = edit_steps({**DEFAULT_FORM, "new_step_type": "sftp"}, "add-step")
    assert form["step-1-type"] == "sftp"
    assert "{{steps.fetch.output.status}}" in references(form, 1)
    assert "{{execution.id}}" in references(form, 1)
    assert not any("steps." in ref for ref in references(form, 0))
    moved = edit_steps(form, "up-1")
    assert moved["step-0-type"] == "sftp"
    assert moved["step-1-id"] == "fetch"
    removed = edit_steps(moved, "remove-step-0")
    assert removed["step-0-id"] == "fetch"
    assert "step-1-id" not in removed
    # Fields of another auth type or operation stay out of the file.
    document, _ = document_from_form(
        {
            **DEFAULT_FORM,
            "step-0-auth_type": "bearer",
            "step-0-auth_token": "${secret:TOKEN}",
            "step-0-auth_username": "ignored",
        }
    )
    assert document["steps"][0]["config"]["auth"] == {"type": "bearer", "token": "${secret:TOKEN}"}


async def test_the_builder_routes(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as api, login(api, "viewer") as client:
        csrf = await csrf_of(client, "/ui/builder")
        base = {**DEFAULT_FORM, "csrf": csrf}
        preview = await client.post(
            "/ui/builder/preview", data=base, headers={"HX-Request": "true"}
        )
        assert 'data-valid="true"' in preview.text
        assert "<html" not in preview.text
        # A global variable of the live system counts; an unknown one is warned of.
        with_var = {**base, "step-0-url": "${API}/items"}
        page = (await client.post("/ui/builder", data=with_var)).text
        assert 'data-valid="true"' in page
        assert "warning:" not in page
        unknown = {**base, "step-0-url": "${NOWHERE}/items"}
        page = (await client.post("/ui/builder", data=unknown)).text
        assert "my-job.yaml:10:12: warning: steps[0].config.url: variable ${NOWHERE}" in page
        broken = {**base, "name": "Bad Name"}
        page = (await client.post("/ui/builder", data=broken)).text
        assert 'data-valid="false"' in page
        assert "Bad Name.yaml:1:7: error: name:" in page
        added = await client.post(
            "/ui/builder", data={**base, "action": "add-step", "new_step_type": "database"}
        )
        assert 'name="step-1-connection_string"' in added.text
        download = await client.post("/ui/builder", data={**base, "action": "download"})
        assert download.headers["content-disposition"] == 'attachment; filename="my-job.yaml"'
        assert load_text(download.text)["name"] == "my-job"
        as_json = await client.post(
            "/ui/builder", data={**base, "action": "download", "format": "json"}
        )
        assert json.loads(as_json.text)["name"] == "my-job"
        export = await client.post("/ui/builder", data={**base, "action": "export"})
        exported = json.loads(export.text)
        assert exported["metadata"]["exported_by"] == "viewer-token"
        assert exported["placeholders"] == []
        assert 'filename="job-my-job.json"' in export.headers["content-disposition"]
        imported = await client.post(
            "/ui/builder/import", data={"csrf": csrf, "import_text": export.text}
        )
        assert imported.status_code == 200
        assert "Imported the job." in imported.text
        assert 'value="my-job"' in imported.text
        assert 'data-valid="true"' in imported.text
        bad = await client.post("/ui/builder/import", data={"csrf": csrf, "import_text": "{"})
        assert bad.status_code == 400
        assert "could not be read" in bad.text
        many = await client.post(
            "/ui/builder/import", data={"csrf": csrf, "import_text": "[{}, {}]"}
        )
        assert "one job at a time" in many.text
