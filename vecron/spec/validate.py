"""Validation of job files: the schema, then the checks that need the whole file.

:func:`check_document` validates one parsed document and returns its problems as
:class:`Finding` values located by their path in the document; :func:`validate_paths`
runs it over files and directories, adds the checks across files (unique job names)
and turns locations into ``file:line:col`` only for the files that have findings.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from vecron.errors import DocumentSyntaxError
from vecron.spec import schedules
from vecron.spec.layout import VARIABLES_FILE, classify
from vecron.spec.loader import Loc, Positions, load_text
from vecron.spec.models import VARIABLE_NAME_PATTERN, Job
from vecron.spec.sensitive import MASKED, embedded_password, find_sensitive, mask

Severity = Literal["error", "warning"]
_PLAIN_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VARIABLE_NAME = re.compile(VARIABLE_NAME_PATTERN)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem in one document, located by its path in the document."""

    loc: Loc
    severity: Severity
    message: str
    key: bool = False  # point at the key rather than the value (unknown keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One problem at a position in a file; ``line`` and ``column`` are 1-based."""

    path: str
    line: int
    column: int
    severity: Severity
    message: str
    field: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"


@dataclass(slots=True, kw_only=True)
class FileReport:
    path: str
    job: Job | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Report:
    files: list[FileReport] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        found = [d for report in self.files for d in report.diagnostics]
        return sorted(found, key=lambda d: (d.path, d.line, d.column, d.message))

    def errors(self, *, strict: bool = False) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error" or strict]

    @property
    def jobs(self) -> list[Job]:
        return [report.job for report in self.files if report.job is not None]


# --- one document ------------------------------------------------------------------


def check_document(
    data: Any, *, global_variables: Mapping[str, Any] | None = None
) -> tuple[Job | None, list[Finding]]:
    """Validate one job document; the job when it is valid, and every finding."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        return None, [
            Finding(loc=(), severity="error", message=f"a job file holds a mapping, not {kind}")
        ]
    findings: list[Finding] = []
    job: Job | None = None
    try:
        job = Job.model_validate(data)
    except ValidationError as exc:
        findings.extend(_schema_findings(data, exc))
    findings.extend(_semantic_findings(data, job, global_variables))
    return (job if not any(f.severity == "error" for f in findings) else None), findings


def _schema_findings(data: Mapping[str, Any], exc: ValidationError) -> Iterator[Finding]:
    merged: dict[tuple[Loc, bool], list[str]] = {}
    for error in exc.errors(include_url=False):
        loc, message, key = _describe(data, error)
        messages = merged.setdefault((loc, key), [])
        if message not in messages:
            messages.append(message)
    for (loc, key), messages in merged.items():
        yield Finding(loc=loc, severity="error", message="; or ".join(messages), key=key)


def _describe(data: Mapping[str, Any], error: Any) -> tuple[Loc, str, bool]:
    kind: str = error["type"]
    raw_loc: Loc = tuple(error["loc"])
    ctx: dict[str, Any] = error.get("ctx") or {}
    loc = clean_loc(data, raw_loc)
    where = format_loc(loc)
    prefix = f"{where}: " if where else ""
    if kind == "missing":
        parent = clean_loc(data, raw_loc[:-1])
        parent_text = format_loc(parent)
        return (
            parent,
            f"{parent_text + ': ' if parent_text else ''}missing required field '{raw_loc[-1]}'",
            False,
        )
    if kind == "extra_forbidden":
        name = str(raw_loc[-1])
        hint = difflib.get_close_matches(name, fields_at(data, loc[:-1]), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        parent_text = format_loc(loc[:-1])
        where_parent = f"{parent_text}: " if parent_text else ""
        return loc, f"{where_parent}unknown field '{name}'{suggestion}", True
    if kind == "union_tag_invalid":
        expected = ", ".join(t.strip("'") for t in str(ctx.get("expected_tags", "")).split(", "))
        tag_field = ctx.get("discriminator", "type").strip("'")
        tag_loc = (*loc, tag_field)
        return (
            tag_loc,
            f"{format_loc(tag_loc)}: unknown {tag_field} {ctx.get('tag')!r} "
            f"(expected one of: {expected})",
            False,
        )
    if kind == "union_tag_not_found":
        tag_field = str(ctx.get("discriminator", "type")).strip("'")
        return loc, f"{prefix}missing required field '{tag_field}'", False
    if kind == "value_error" and isinstance(ctx.get("error"), Exception):
        return loc, f"{prefix}{ctx['error']}", False
    message = str(error["msg"]).replace("Input should be", "must be")
    value = error.get("input")
    key = str(loc[-1]) if loc else ""
    # A value under a secret's key is never echoed, whatever its type.
    shown = mask(str(value), key) if isinstance(value, str | int | float) else value
    if shown == MASKED:
        message += ", got a value that is not shown (it is a secret)"
    elif isinstance(value, str | int | float | bool) and len(repr(value)) <= 60:
        message += f", got {value!r}"
    return loc, prefix + message, False


def clean_loc(data: Any, loc: Sequence[str | int]) -> Loc:
    """``loc`` without pydantic's union tags (``http``, ``float``, …): keys and indices.

    A key that the data lacks is kept when it is a field name (a missing or unknown
    field) and dropped otherwise, as is everything below a scalar.
    """
    clean: list[str | int] = []
    node: Any = data
    tagged: object = None
    for part in loc:
        is_tag = isinstance(node, dict) and part in (node.get("type"), node.get("operation"))
        if is_tag and tagged is not node:
            tagged = node  # a discriminated union's tag comes once, right after its node
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in _known_fields():
            node = None
        else:
            continue
        clean.append(part)
    return tuple(clean)


def format_loc(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_FIELDS: set[str] = set()


def fields_at(data: Any, loc: Sequence[str | int]) -> list[str]:
    """The field names the model allows at ``loc`` in ``data`` (a clean location)."""
    candidates = _models_in(Job)
    node = data
    for part in loc:
        if isinstance(part, int):
            candidates = _models_in(_element_type(candidates))
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        model = _pick(candidates, node)
        info = model.model_fields.get(part) if model is not None else None
        if info is None:
            by_alias = {f.alias: f for f in model.model_fields.values()} if model else {}
            info = by_alias.get(part)
        if info is None:
            return []
        candidates = _models_in(info.annotation)
        node = node.get(part) if isinstance(node, dict) else None
    model = _pick(candidates, node)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _models_in(annotation: Any) -> list[Any]:
    """Model classes inside ``annotation`` (through Optional, unions, Annotated, list)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[Any] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    if get_origin(annotation) in (list, dict):
        return [("container", annotation)]
    return found


def _element_type(candidates: list[Any]) -> Any:
    for candidate in candidates:
        if isinstance(candidate, tuple):
            args = get_args(candidate[1])
            return args[-1] if args else Any
    return None


def _pick(candidates: list[Any], node: Any) -> Any:
    models = [c for c in candidates if not isinstance(c, tuple)]
    if len(models) <= 1:
        return models[0] if models else None
    if not isinstance(node, dict):
        return None
    for model in models:
        for tag in ("type", "operation"):
            info = model.model_fields.get(tag)
            if info is not None and node.get(tag) in get_args(info.annotation):
                return model
    return None


def _known_fields() -> set[str]:
    if not _FIELDS:
        from vecron.spec import models

        for value in vars(models).values():
            if isinstance(value, type) and issubclass(value, models.Model):
                for name, info in value.model_fields.items():
                    _FIELDS.add(info.alias or name)
    return _FIELDS


# --- checks beyond the schema ------------------------------------------------------


def _semantic_findings(
    data: Mapping[str, Any], job: Job | None, global_variables: Mapping[str, Any] | None
) -> Iterator[Finding]:
    from vecron.spec.references_check import ReferenceChecker

    checker = ReferenceChecker(data, global_variables=global_variables)
    yield from checker.check()
    job_variables = data.get("variables")
    plain = dict(global_variables or {})
    if isinstance(job_variables, dict):
        plain.update(job_variables)
    for secret in find_sensitive(data):
        if secret.is_literal:
            yield Finding(
                loc=secret.loc,
                severity="warning",
                message=(
                    f"{format_loc(secret.loc)}: literal secret ({secret.reason}); "
                    "write it as ${secret:NAME} so it never lands in Git"
                ),
            )
            continue
        match = _PLAIN_VARIABLE.fullmatch(secret.secret)
        value = plain.get(match.group(1)) if match else None
        if not (match and isinstance(value, str)) or _holds_placeholder(value):
            continue
        if secret.reason != "connection_string" or embedded_password(value) is not None:
            yield Finding(
                loc=secret.loc,
                severity="warning",
                message=(
                    f"{format_loc(secret.loc)}: {secret.secret} holds a literal value, so the "
                    f"secret lands in Git; use ${{secret:{match.group(1)}}}"
                ),
            )
    yield from _step_config_findings(data)
    if job is not None:
        yield from _job_findings(job)


def _step_config_findings(data: Mapping[str, Any]) -> Iterator[Finding]:
    steps = data.get("steps")
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("config"), dict):
            continue
        config = step["config"]
        query = config.get("query")
        if step.get("type") == "database" and isinstance(query, str):
            quoted = quoted_placeholder(query)
            if quoted is not None:
                yield Finding(
                    loc=("steps", index, "config", "query"),
                    severity="warning",
                    message=(
                        f"steps[{index}].config.query: {quoted} is inside a quoted SQL literal; "
                        "references and variables are bound as parameters, so write it "
                        "without quotes"
                    ),
                )


def quoted_placeholder(query: str) -> str | None:
    """The first ``{{…}}`` or ``${…}`` inside a single-quoted SQL literal, if any."""
    in_quote = False
    position = 0
    while position < len(query):
        char = query[position]
        if char == "'":
            in_quote = not in_quote  # '' (an escaped quote) toggles twice
        elif in_quote and query.startswith(("{{", "${"), position):
            closing = "}}" if query.startswith("{{", position) else "}"
            end = query.find(closing, position)
            return query[position : end + len(closing)] if end >= 0 else query[position:]
        position += 1
    return None


def _holds_placeholder(value: str) -> bool:
    return "${" in value or "{{" in value


def _job_findings(job: Job) -> Iterator[Finding]:
    now = datetime.now(UTC)
    schedule = job.schedule
    if schedule is not None:
        tz = schedules.zone(schedule.timezone)
        if schedule.end_at is not None and schedules.aware(schedule.end_at, tz) < now:
            yield Finding(
                loc=("schedule", "end_at"),
                severity="warning",
                message="schedule.end_at is in the past: the schedule will never fire",
            )
        if schedule.type == "one_time" and schedules.aware(schedule.at, tz) < now:
            yield Finding(
                loc=("schedule", "at"),
                severity="warning",
                message="schedule.at is in the past: the job will not fire on its schedule",
            )
    if not (job.scheduled or job.triggers.manual or job.webhook_enabled):
        yield Finding(
            loc=("triggers",),
            severity="warning",
            message="no trigger is on (scheduled, manual, webhook): the job can never run",
        )


# --- files and directories ---------------------------------------------------------


def discover(paths: Iterable[Path]) -> list[Path]:
    """Job files under ``paths``: ``.yaml``, ``.yml`` and ``.json`` files, recursively.

    Inside directories, :func:`vecron.spec.layout.classify` decides: hidden entries,
    ``variables.yaml`` files (found by :func:`find_variables_file` instead) and
    ``files/`` folders are not jobs.
    """
    found: list[Path] = []
    for root in paths:
        if root.is_dir():
            for candidate in sorted(root.rglob("*")):
                relative = candidate.relative_to(root).as_posix()
                if classify(relative) == "job" and candidate.is_file():
                    found.append(candidate)
        else:
            found.append(root)
    return found


def find_variables_file(path: Path) -> Path | None:
    """The ``variables.yaml`` of the repository that holds ``path``, if any."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        candidate = folder / VARIABLES_FILE
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def load_variables(path: Path) -> dict[str, Any]:
    """Global variables from a ``variables.yaml``: a mapping of names to scalars.

    Raises :class:`DocumentSyntaxError` for bad YAML or a document of another shape.
    """
    data = _variables_mapping(load_text(path.read_text(encoding="utf-8-sig")))
    if data is None:
        raise DocumentSyntaxError(
            "a variables file holds a mapping of names to values", line=1, column=1
        )
    return data


def _variables_mapping(data: Any) -> dict[str, Any] | None:
    if data is None:
        return {}
    if isinstance(data, dict) and isinstance(data.get("variables"), dict):
        data = data["variables"]
    return dict(data) if isinstance(data, dict) else None


def check_variables(data: Any) -> list[Finding]:
    """Problems in a variables file's data: names, value types and literal secrets."""
    mapping = _variables_mapping(data)
    if mapping is None:
        return [Finding(loc=(), severity="error", message="a variables file holds a mapping")]
    prefix: Loc = ("variables",) if isinstance(data, dict) and "variables" in data else ()
    findings = []
    for name, value in mapping.items():
        loc = (*prefix, name)
        if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
            findings.append(
                Finding(loc=loc, severity="error", message=f"{name!r} is not a variable name")
            )
        if not isinstance(value, str | int | float | bool) and value is not None:
            findings.append(
                Finding(
                    loc=loc,
                    severity="error",
                    message=f"{name}: a variable holds a string, number or boolean",
                )
            )
    for secret in find_sensitive({"variables": mapping}):
        if secret.is_literal:
            findings.append(
                Finding(
                    loc=(*prefix, *secret.loc[1:]),
                    severity="warning",
                    message=(
                        f"{secret.loc[-1]}: literal secret ({secret.reason}); "
                        "write it as ${secret:NAME} so it never lands in Git"
                    ),
                )
            )
    return findings


def validate_paths(
    paths: Sequence[Path], *, global_variables: Mapping[str, Any] | None = None
) -> Report:
    """Validate every job file under ``paths`` and the names across them.

    Global variables come from ``global_variables`` or else from the
    ``variables.yaml`` of each file's repository, which is checked too. Raises
    :class:`OSError` when a path does not exist or cannot be read.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
    report = Report()
    names: dict[str, str] = {}
    variables_cache: dict[Path, Mapping[str, Any] | None] = {}
    for file_path in discover(paths):
        shown = str(file_path)
        text = file_path.read_text(encoding="utf-8-sig")
        file_report = FileReport(path=shown)
        report.files.append(file_report)
        if file_path.name == VARIABLES_FILE:  # named explicitly
            _check_variables_file(file_path, text, file_report)
            continue
        try:
            data = load_text(text, json_file=file_path.suffix == ".json")
        except DocumentSyntaxError as exc:
            file_report.diagnostics.append(_syntax_diagnostic(shown, exc))
            continue
        variables = global_variables
        if variables is None:
            variables = _variables_for(file_path, variables_cache, report)
        job, findings = check_document(data, global_variables=variables)
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            if name in names:
                findings.append(
                    Finding(
                        loc=("name",),
                        severity="error",
                        message=f"name: job name {name!r} is already used by {names[name]}",
                    )
                )
                job = None
            else:
                names[name] = shown
        file_report.job = job
        file_report.diagnostics.extend(locate_findings(shown, text, findings))
    return report


def _syntax_diagnostic(shown: str, exc: DocumentSyntaxError) -> Diagnostic:
    return Diagnostic(
        path=shown, line=exc.line, column=exc.column, severity="error", message=exc.message
    )


def locate_findings(shown: str, text: str, findings: Sequence[Finding]) -> list[Diagnostic]:
    """Diagnostics at the positions of ``findings``, parsing positions only if needed."""
    if not findings:
        return []
    positions = Positions.from_text(text)
    located = []
    for finding in findings:
        line, column = positions.locate(finding.loc, key=finding.key)
        located.append(
            Diagnostic(
                path=shown,
                line=line,
                column=column,
                severity=finding.severity,
                message=finding.message,
                field=format_loc(finding.loc),
            )
        )
    return located


def _check_variables_file(path: Path, text: str, report: FileReport) -> Any:
    try:
        data = load_text(text)
    except DocumentSyntaxError as exc:
        report.diagnostics.append(_syntax_diagnostic(str(path), exc))
        return None
    findings = check_variables(data)
    report.diagnostics.extend(locate_findings(str(path), text, findings))
    if any(f.severity == "error" for f in findings):
        return None
    return _variables_mapping(data)


def _variables_for(
    path: Path, cache: dict[Path, Mapping[str, Any] | None], report: Report
) -> Mapping[str, Any] | None:
    variables_file = find_variables_file(path)
    if variables_file is None:
        return None
    if variables_file not in cache:
        file_report = FileReport(path=str(variables_file))
        report.files.append(file_report)
        text = variables_file.read_text(encoding="utf-8-sig")
        cache[variables_file] = _check_variables_file(variables_file, text, file_report)
    return cache[variables_file]
