"""The job builder: a flat form to a job document and back, the file it produces, and
its validation by the validator ``vecron validate`` runs.

The form is a flat mapping of text (``name``, ``schedule_type``, ``step-0-url``…), so
that the page works as a plain HTML form and htmx only makes it live. Steps are
numbered ``step-{i}-…``; :func:`document_from_form` reads them in order and
:func:`.builder_io.form_from_document` writes them back, so a file imports into the form.
What the form has no field for goes through the free YAML fields (``job_extra``,
``step-{i}-extra``), so nothing is lost on the way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vecron.dashboard.builder_fields import STEP_FIELDS, FieldSpec
from vecron.errors import DocumentSyntaxError
from vecron.spec import schedules
from vecron.spec.loader import load_text
from vecron.spec.validate import Diagnostic

Form = dict[str, str]
_STEP_KEY = re.compile(r"step-(\d+)-(.+)")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")

STEP_LIMITS = {"timeout_seconds": "step_timeout_seconds", "max_retries": "step_max_retries"}
"""Step-level keys and their form fields (``timeout_seconds`` is also an http config key)."""

DEFAULT_FORM: Form = {
    "name": "my-job",
    "description": "",
    "enabled": "on",
    "schedule_type": "cron",
    "schedule_expression": "0 0 2 ? * MON-FRI",
    "schedule_timezone": schedules.DEFAULT_TIMEZONE,
    "trigger_scheduled": "on",
    "trigger_manual": "on",
    "step-0-id": "fetch",
    "step-0-type": "http",
    "step-0-url": "https://example.com/api/items",
    "step-0-method": "GET",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """What the builder made of a form: the document, its file, and what is wrong."""

    document: dict[str, Any]
    text: str
    format: str
    filename: str
    problems: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    schedule_words: str | None = None
    fires: list[datetime] = field(default_factory=list)
    schedule_error: str | None = None
    timezone: str = schedules.DEFAULT_TIMEZONE

    @property
    def valid(self) -> bool:
        return not self.problems and not any(d.severity == "error" for d in self.diagnostics)


# -- form -> document -------------------------------------------------------------------


def step_indices(form: Mapping[str, str]) -> list[int]:
    found = {int(m.group(1)) for key in form if (m := _STEP_KEY.fullmatch(key))}
    return sorted(found)


def _number(text: str) -> Any:
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def scalar(text: str) -> Any:
    """A value typed as YAML reads it (``10``, ``true``, ``"10"``); other text as is."""
    try:
        value = load_text(text)
    except DocumentSyntaxError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _lines(
    text: str, separator: str, what: str, problems: list[str], *, typed: bool = False
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, found, value = line.partition(separator)
        if not found or not key.strip():
            problems.append(f"{what}, line {number}: write it as name{separator}value")
            continue
        result[key.strip()] = scalar(value.strip()) if typed else value.strip()
    return result


def _yaml(text: str, what: str, problems: list[str]) -> Any:
    try:
        return load_text(text)
    except DocumentSyntaxError as exc:
        problems.append(f"{what}: {exc.message} (line {exc.line}, column {exc.column})")
        return None


def _parse(spec: FieldSpec, text: str, what: str, problems: list[str]) -> Any:
    if spec.parse == "number":
        return _number(text)
    if spec.parse == "bool":
        return text == "true"
    if spec.parse == "colon_map":
        return _lines(text, ":", what, problems)
    if spec.parse == "eq_map":
        return _lines(text, "=", what, problems, typed=True)
    if spec.parse == "yaml":
        return _yaml(text, what, problems)
    if spec.parse == "json_or_text":
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.loads(stripped)
            except ValueError:
                return text
        return text
    if spec.parse == "status_list":
        return [_number(part) for part in re.split(r"[,\s]+", text.strip()) if part]
    return text


def visible(spec: FieldSpec, values: Mapping[str, str]) -> bool:
    """Whether ``spec`` applies, given the step's other values (its auth type…)."""
    if spec.when is None:
        return True
    other, allowed = spec.when
    return values.get(other, "") in allowed


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def _merge(base: dict[str, Any], extra: Any) -> None:
    if not isinstance(extra, dict):
        return
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _step(form: Mapping[str, str], index: int, problems: list[str]) -> dict[str, Any]:
    prefix = f"step-{index}-"
    values = {key[len(prefix) :]: v for key, v in form.items() if key.startswith(prefix)}
    step_id = values.get("id", "").strip()
    kind = values.get("type", "http")
    what = f"step {step_id or index + 1}"
    step: dict[str, Any] = {"id": step_id, "type": kind}
    for key in ("name", "when"):
        if values.get(key, "").strip():
            step[key] = values[key].strip()
    for key, field_name in STEP_LIMITS.items():
        if values.get(field_name, "").strip():
            step[key] = _number(values[field_name])
    if values.get("continue_on_error") == "on":
        step["continue_on_error"] = True
    config: dict[str, Any] = {}
    for spec in STEP_FIELDS.get(kind, []):
        text = values.get(spec.name, "")
        if not text.strip() or not visible(spec, values):
            continue
        _put(config, spec.path, _parse(spec, text, f"{what} {spec.label.lower()}", problems))
    extra = values.get("extra", "")
    if extra.strip():
        parsed = _yaml(extra, f"{what} more config", problems)
        if parsed is not None and not isinstance(parsed, dict):
            problems.append(f"{what} more config: write a YAML mapping (key: value)")
        _merge(config, parsed)
    step["config"] = config
    return step


def document_from_form(form: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The job document the form describes, and the problems of fields it could not read."""
    problems: list[str] = []
    doc: dict[str, Any] = {"name": form.get("name", "").strip()}
    if form.get("description", "").strip():
        doc["description"] = form["description"].strip()
    if form.get("enabled") != "on":
        doc["enabled"] = False
    labels = _lines(form.get("labels", ""), "=", "labels", problems)
    if labels:
        doc["labels"] = labels
    kind = form.get("schedule_type", "none")
    if kind in ("cron", "fixed_rate", "fixed_delay", "one_time"):
        schedule: dict[str, Any] = {"type": kind}
        key = {"cron": "expression", "one_time": "at"}.get(kind, "interval")
        value = form.get(f"schedule_{key}", "").strip()
        schedule[key] = _number(value) if key == "interval" and _INT.fullmatch(value) else value
        if form.get("schedule_timezone", "").strip():
            schedule["timezone"] = form["schedule_timezone"].strip()
        if form.get("schedule_end_at", "").strip():
            schedule["end_at"] = form["schedule_end_at"].strip()
        doc["schedule"] = schedule
    triggers: dict[str, Any] = {}
    # The box is only on the page while there is a schedule: unticked means off only
    # when it was shown (a schedule just chosen fires by default).
    shown = form.get("trigger_scheduled_shown") == "1"
    if "schedule" in doc and shown and form.get("trigger_scheduled") != "on":
        triggers["scheduled"] = False
    if form.get("trigger_manual") != "on":
        triggers["manual"] = False
    if form.get("webhook_enabled") == "on":
        webhook: dict[str, Any] = {}
        if form.get("webhook_secret", "").strip():
            webhook["secret"] = form["webhook_secret"].strip()
        if form.get("webhook_rate_limit", "").strip():
            webhook["rate_limit"] = _number(form["webhook_rate_limit"])
        triggers["webhook"] = webhook
    if triggers:
        doc["triggers"] = triggers
    if form.get("allow_concurrent") == "on":
        doc["allow_concurrent"] = True
    for key in ("timeout_seconds", "max_retries"):
        if form.get(key, "").strip():
            doc[key] = _number(form[key])
    variables = _lines(form.get("variables", ""), "=", "variables", problems, typed=True)
    if variables:
        doc["variables"] = variables
    doc["steps"] = [_step(form, index, problems) for index in step_indices(form)]
    extra = form.get("job_extra", "")
    if extra.strip():
        parsed = _yaml(extra, "more settings", problems)
        if parsed is not None and not isinstance(parsed, dict):
            problems.append("more settings: write a YAML mapping (key: value)")
        _merge(doc, parsed)
    return doc, problems
