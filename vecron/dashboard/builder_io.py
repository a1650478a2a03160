"""The builder's outputs and inputs: the YAML or JSON file with its validation and
schedule preview, the export format, a document back into the form, and step edits."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from vecron import __version__
from vecron.dashboard.builder import (
    STEP_LIMITS,
    Built,
    Form,
    document_from_form,
    scalar,
    step_indices,
    visible,
)
from vecron.dashboard.builder_fields import (
    CONTEXT_REFERENCES,
    OUTPUT_REFERENCES,
    STEP_FIELDS,
    FieldSpec,
)
from vecron.dashboard.present import describe_schedule, next_fires
from vecron.errors import DocumentSyntaxError
from vecron.spec import schedules
from vecron.spec.loader import load_text
from vecron.spec.models import Schedule
from vecron.spec.validate import check_document, format_loc, locate_findings

PREVIEW_FIRES = 5
_SCHEDULE = TypeAdapter[Schedule](Schedule)
ENVELOPE_KEYS = ("placeholders", "metadata")
"""What the export format adds to a job definition (``vecron export``); set aside on import."""
_SECRET_PLACEHOLDER = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")


def _literal(value: Any) -> Any:
    """Multi-line strings as YAML block literals (SQL, bodies), everything else as is."""
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value if value.endswith("\n") else value + "\n")
    return value


def to_yaml(document: Mapping[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(_literal(dict(document)), buffer)
    return buffer.getvalue()


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def placeholders(document: Any, loc: tuple[str | int, ...] = ()) -> dict[str, list[str]]:
    """Every ``${secret:NAME}`` in ``document``: the name and the fields that use it."""
    found: dict[str, list[str]] = {}
    if isinstance(document, dict):
        items: list[tuple[str | int, Any]] = list(document.items())
    elif isinstance(document, list):
        items = list(enumerate(document))
    else:
        if isinstance(document, str):
            for name in _SECRET_PLACEHOLDER.findall(document):
                found.setdefault(name, []).append(format_loc(loc))
        return found
    for key, value in items:
        for name, fields in placeholders(value, (*loc, key)).items():
            found.setdefault(name, []).extend(fields)
    return found


def export_json(document: Mapping[str, Any], *, exported_by: str) -> str:
    """The export format of ``vecron export``: the job, the ``placeholders`` (secrets) it
    needs, and a ``metadata`` block. The builder's job has no id or source yet."""
    needed = placeholders(dict(document))
    return to_json(
        {
            **document,
            "placeholders": [{"name": n, "fields": needed[n]} for n in sorted(needed)],
            "metadata": {
                "export_date": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "exported_by": exported_by,
                "system_version": f"vecron {__version__}",
                "job_id": None,
                "source_path": None,
                "source_commit": None,
            },
        }
    )


def build(
    form: Mapping[str, str],
    *,
    fmt: str = "yaml",
    global_variables: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Built:
    """The file ``form`` produces, checked by the validator as ``vecron validate`` checks
    it (the same messages, at ``file:line:col``), with its schedule's next fire times."""
    document, problems = document_from_form(form)
    fmt = "json" if fmt == "json" else "yaml"
    text = to_json(document) if fmt == "json" else to_yaml(document)
    filename = f"{document.get('name') or 'job'}.{fmt}"
    diagnostics = []
    try:
        data = load_text(text, json_file=fmt == "json")
    except DocumentSyntaxError as exc:
        problems.append(exc.message)
    else:
        _, findings = check_document(data, global_variables=global_variables)
        diagnostics = locate_findings(filename, text, findings)
    words = error = None
    fires: list[datetime] = []
    timezone = schedules.DEFAULT_TIMEZONE
    if isinstance(document.get("schedule"), dict):
        try:
            schedule = _SCHEDULE.validate_python(document["schedule"])
            timezone = schedule.timezone
            schedules.zone(timezone)
            words = describe_schedule(schedule)
            fires = next_fires(schedule, count=PREVIEW_FIRES, after=now)
        except (ValidationError, ValueError) as exc:
            error = _first_error(exc)
    return Built(
        document=document,
        text=text,
        format=fmt,
        filename=filename,
        problems=problems,
        diagnostics=diagnostics,
        schedule_words=words,
        fires=fires,
        schedule_error=error,
        timezone=timezone,
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


def references(form: Mapping[str, str], index: int) -> list[str]:
    """The references a step at position ``index`` may use: earlier steps' outputs,
    the execution and job, the webhook payload, and the job's variables."""
    found: list[str] = []
    for earlier in step_indices(form):
        if earlier >= index:
            break
        step_id = form.get(f"step-{earlier}-id", "").strip()
        kind = form.get(f"step-{earlier}-type", "http")
        if step_id:
            found.extend(f"{{{{steps.{step_id}.{path}}}}}" for path in OUTPUT_REFERENCES[kind])
    found.extend(f"{{{{{path}}}}}" for path in CONTEXT_REFERENCES)
    if form.get("webhook_enabled") == "on":
        found.append("{{webhook.payload}}")
    for line in form.get("variables", "").splitlines():
        name = line.partition("=")[0].strip()
        if name:
            found.append(f"${{{name}}}")
    return found


# -- document -> form -------------------------------------------------------------------


def scalar_text(value: Any) -> str:
    """``value`` as a line of the form that :func:`~.builder.scalar` reads back the same."""
    if isinstance(value, str) and scalar(value) == value and "\n" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _text(value: Any, spec: FieldSpec) -> str:
    if value is None:
        return ""
    if spec.parse == "bool":
        return "true" if value else "false"
    if spec.parse == "colon_map" and isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if spec.parse == "eq_map" and isinstance(value, dict):
        return "\n".join(f"{k}={scalar_text(v)}" for k, v in value.items())
    if spec.parse == "status_list" and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if spec.parse == "yaml" or (spec.parse == "json_or_text" and not isinstance(value, str)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _pop(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    value = node.pop(path[-1], None)
    if len(path) > 1 and not node:
        _pop(data, path[:-1])
    return value


def form_from_document(document: Mapping[str, Any]) -> tuple[Form, list[str]]:
    """The form for a job document (a job file, or the export format); what the form
    has no field for lands in the free YAML fields."""
    data = json.loads(json.dumps(document, default=str))  # a deep, plain copy
    if isinstance(data, list):
        if len(data) != 1:
            return {}, ["the file holds several jobs; import one job at a time"]
        data = data[0]
    if not isinstance(data, dict):
        return {}, ["a job is a JSON object"]
    for key in ENVELOPE_KEYS:
        data.pop(key, None)
    data.pop("$schema", None)
    form: Form = {
        "name": str(data.pop("name", "")),
        "description": str(data.pop("description", "")),
    }
    if data.pop("enabled", True) is not False:
        form["enabled"] = "on"
    labels = data.pop("labels", None) or {}
    form["labels"] = "\n".join(f"{k}={v}" for k, v in labels.items())
    variables = data.pop("variables", None) or {}
    form["variables"] = "\n".join(f"{k}={scalar_text(v)}" for k, v in variables.items())
    schedule = data.pop("schedule", None)
    form["schedule_type"] = "none"
    if isinstance(schedule, dict):
        form["schedule_type"] = str(schedule.pop("type", "cron"))
        for key in ("expression", "interval", "at", "timezone", "end_at"):
            if key in schedule:
                form[f"schedule_{key}"] = str(schedule.pop(key))
        if schedule:
            data["schedule"] = schedule
    triggers = data.pop("triggers", None) or {}
    if isinstance(schedule, dict):
        form["trigger_scheduled_shown"] = "1"
    if triggers.pop("scheduled", True) is not False:
        form["trigger_scheduled"] = "on"
    if triggers.pop("manual", True) is not False:
        form["trigger_manual"] = "on"
    webhook = triggers.pop("webhook", None)
    if isinstance(webhook, dict) and webhook.pop("enabled", True) is not False:
        form["webhook_enabled"] = "on"
        form["webhook_secret"] = str(webhook.pop("secret", "") or "")
        form["webhook_rate_limit"] = str(webhook.pop("rate_limit", "") or "")
        if webhook:
            triggers["webhook"] = webhook
    if triggers:
        data["triggers"] = triggers
    if data.pop("allow_concurrent", False):
        form["allow_concurrent"] = "on"
    for key in ("timeout_seconds", "max_retries"):
        if key in data:
            form[key] = str(data.pop(key))
    for index, step in enumerate(data.pop("steps", None) or []):
        form.update(_step_form(step, index))
    if data:
        form["job_extra"] = to_yaml(data)
    return form, []


def _step_form(step: Any, index: int) -> Form:
    prefix = f"step-{index}-"
    if not isinstance(step, dict):
        return {f"{prefix}id": "", f"{prefix}type": "http", f"{prefix}extra": to_yaml(step)}
    step = dict(step)
    kind = str(step.pop("type", "http"))
    form: Form = {f"{prefix}id": str(step.pop("id", "")), f"{prefix}type": kind}
    for key in ("name", "when"):
        if key in step:
            form[prefix + key] = str(step.pop(key))
    for key, field_name in STEP_LIMITS.items():
        if key in step:
            form[prefix + field_name] = str(step.pop(key))
    if step.pop("continue_on_error", False):
        form[f"{prefix}continue_on_error"] = "on"
    config = step.pop("config", None)
    config = dict(config) if isinstance(config, dict) else {}
    values: dict[str, str] = {}
    for spec in STEP_FIELDS.get(kind, []):
        value = _pop(config, spec.path)
        if value is not None:
            values[spec.name] = _text(value, spec)
    for spec in STEP_FIELDS.get(kind, []):
        if spec.name in values and not visible(spec, values):
            _put_back(config, spec, values.pop(spec.name))
    form.update({prefix + name: value for name, value in values.items()})
    if config:
        form[f"{prefix}extra"] = to_yaml(config)
    return form


def _put_back(config: dict[str, Any], spec: FieldSpec, text: str) -> None:
    node = config
    for key in spec.path[:-1]:
        node = node.setdefault(key, {})
    node[spec.path[-1]] = text


# -- step edits ---------------------------------------------------------------------------


def _renumber(form: Mapping[str, str], order: list[int]) -> Form:
    result = {k: v for k, v in form.items() if not k.startswith("step-")}
    for new, old in enumerate(order):
        prefix = f"step-{old}-"
        for key, value in form.items():
            if key.startswith(prefix):
                result[f"step-{new}-{key[len(prefix) :]}"] = value
    return result


def edit_steps(form: Mapping[str, str], action: str) -> Form:
    """``add-step``, ``remove-step-N``, ``up-N`` on the form's steps (renumbered)."""
    order = step_indices(form)
    if action == "add-step":
        fresh = dict(_renumber(form, order))
        index = len(order)
        fresh[f"step-{index}-id"] = f"step{index + 1}"
        fresh[f"step-{index}-type"] = form.get("new_step_type", "http") or "http"
        return fresh
    verb, _, number = action.rpartition("-")
    if not number.isdigit() or int(number) not in order:
        return dict(form)
    position = order.index(int(number))
    if verb == "remove-step":
        order.pop(position)
    elif verb == "up" and position > 0:
        order[position - 1], order[position] = order[position], order[position - 1]
    return _renumber(form, order)
