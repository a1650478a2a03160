"""Static checks of the references and variables inside one job document.

Every string inside a step's ``config`` is a template (``{{…}}`` references and
``${…}`` variables) and ``when`` is a condition. A reference must parse, start at a
known root and read only what exists when its step runs: earlier steps, the webhook
only on jobs that have a webhook trigger. Variables must be declared in the job or
globally; an unknown one is a warning, since it may still be set with ``vecron vars``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from vecron.errors import SpecError
from vecron.spec import contextkeys
from vecron.spec.conditions import parse_condition
from vecron.spec.conditions import references as condition_references
from vecron.spec.loader import Loc
from vecron.spec.references import Index, Key, Reference, has_template, parse_template
from vecron.spec.validate import Finding, format_loc

_KNOWN_NON_HTTP_TYPES = frozenset({"database", "file_processing", "sftp"})


class ReferenceChecker:
    """Checks one job document, given as plain data (it need not be schema-valid)."""

    def __init__(
        self, data: Mapping[str, Any], *, global_variables: Mapping[str, Any] | None
    ) -> None:
        self._data = data
        steps = data.get("steps")
        self._steps: list[Any] = steps if isinstance(steps, list) else []
        self._ids: dict[str, int] = {}
        self._types: dict[str, str] = {}
        for index, step in enumerate(self._steps):
            if isinstance(step, dict) and isinstance(step.get("id"), str):
                self._ids.setdefault(step["id"], index)
                self._types.setdefault(step["id"], str(step.get("type")))
        job_vars = data.get("variables")
        self._variables = set(job_vars) if isinstance(job_vars, dict) else set()
        self._variables |= set(global_variables or ())
        triggers = data.get("triggers")
        webhook = triggers.get("webhook") if isinstance(triggers, dict) else None
        self._webhook = isinstance(webhook, dict) and webhook.get("enabled", True) is not False
        headers = webhook.get("headers") if isinstance(webhook, dict) else None
        self._headers = {str(h).lower() for h in headers} if isinstance(headers, list) else set()

    def check(self) -> Iterator[Finding]:
        yield from self._duplicate_ids()
        for index, step in enumerate(self._steps):
            if not isinstance(step, dict):
                continue
            when = step.get("when")
            if isinstance(when, str):
                yield from self._condition(when, ("steps", index, "when"), index)
            if isinstance(step.get("config"), dict):
                yield from self._walk(step["config"], ("steps", index, "config"), index)
                yield from self._data_source(step, index)
        variables = self._data.get("variables")
        if isinstance(variables, dict):
            for name, value in variables.items():
                if isinstance(value, str) and has_template(value):
                    yield from self._template(value, ("variables", name), None)

    def _duplicate_ids(self) -> Iterator[Finding]:
        for index, step in enumerate(self._steps):
            if isinstance(step, dict) and isinstance(step.get("id"), str):
                first = self._ids[step["id"]]
                if first != index:
                    yield self._error(
                        ("steps", index, "id"),
                        f"duplicate step id {step['id']!r} (first used by steps[{first}])",
                    )

    def _walk(self, node: Any, loc: Loc, step: int) -> Iterator[Finding]:
        if isinstance(node, str):
            if has_template(node):
                yield from self._template(node, loc, step)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "transformations":
                    yield from self._transformations(value, (*loc, key), step)
                else:
                    yield from self._walk(value, (*loc, key), step)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from self._walk(item, (*loc, index), step)

    def _transformations(self, node: Any, loc: Loc, step: int) -> Iterator[Finding]:
        # Column names and types are literal; a filter reads columns and, in {{…}}, the
        # context (the schema checks its syntax).
        if not isinstance(node, list):
            return
        for index, item in enumerate(node):
            if not isinstance(item, dict):
                continue
            for key, value in item.items():
                here = (*loc, index, key)
                if key == "condition" and isinstance(value, str):
                    yield from self._condition(value, here, step, mode="filter")
                elif _holds_template(value):
                    yield self._error(here, "transformations take literal values, not references")

    def _template(self, text: str, loc: Loc, step: int | None) -> Iterator[Finding]:
        try:
            template = parse_template(text)
        except SpecError as exc:
            yield self._error(loc, str(exc))
            return
        for reference in template.references:
            yield from self._reference(reference, loc, step)
        for variable in template.variables:
            if not variable.secret:
                yield from self._undeclared(variable.name, f"${{{variable.name}}}", loc)

    def _undeclared(self, name: str, shown: str, loc: Loc) -> Iterator[Finding]:
        if name not in self._variables:
            yield Finding(
                loc=loc,
                severity="warning",
                message=(
                    f"{format_loc(loc)}: variable {shown} is not declared in the job's variables "
                    "or in variables.yaml (it must then be set at run time)"
                ),
            )

    def _condition(
        self, text: str, loc: Loc, step: int, *, mode: Literal["when", "filter"] = "when"
    ) -> Iterator[Finding]:
        try:
            condition = parse_condition(text, mode=mode)
        except SpecError:
            return  # reported by the schema check
        for reference in condition_references(condition):
            yield from self._reference(reference, loc, step)

    def _data_source(self, step: Mapping[str, Any], index: int) -> Iterator[Finding]:
        config = step["config"]
        source = config.get("data_source")
        if step.get("type") != "file_processing" or not isinstance(source, str):
            return
        loc = ("steps", index, "config", "data_source")
        try:
            template = parse_template(source)
        except SpecError:
            return
        if not (template.is_single_value and template.references):
            yield self._error(loc, "data_source must be one reference, e.g. {{steps.read.output}}")

    def _reference(self, ref: Reference, loc: Loc, step: int | None) -> Iterator[Finding]:
        problem = self._reference_problem(ref, step)
        if problem is not None:
            yield self._error(loc, f"reference {{{{{ref}}}}}: {problem}")
        elif ref.root == "variables" and ref.path and isinstance(ref.path[0], Key):
            yield from self._undeclared(ref.path[0].name, f"{{{{{ref}}}}}", loc)
        elif ref.root == "webhook" and len(ref.path) >= 2 and ref.path[0] == Key(name="headers"):
            header = ref.path[1]
            if isinstance(header, Key) and header.name.lower() not in self._headers:
                yield Finding(
                    loc=loc,
                    severity="warning",
                    message=(
                        f"{format_loc(loc)}: reference {{{{{ref}}}}}: header {header.name!r} is "
                        "not listed in triggers.webhook.headers, so it never reaches the context"
                    ),
                )

    def _reference_problem(self, ref: Reference, step: int | None) -> str | None:
        first = ref.path[0] if ref.path else None
        first_key = first.name if isinstance(first, Key) else None
        if ref.root not in contextkeys.ROOTS:
            roots = ", ".join(contextkeys.ROOTS)
            return f"unknown root {ref.root!r} (expected one of: {roots})"
        if ref.root == "steps":
            return self._step_problem(ref, step)
        if ref.root == "webhook":
            if not self._webhook:
                return "webhook data exists only in jobs whose webhook trigger is on"
            return _member(first_key, first, contextkeys.WEBHOOK_KEYS, "webhook")
        if ref.root == "execution":
            return _member(first_key, first, contextkeys.EXECUTION_KEYS, "execution")
        if ref.root == "job":
            return _member(first_key, first, contextkeys.JOB_KEYS, "job")
        if first_key is None:
            return "name a variable, e.g. variables.NAME"
        return None  # an undeclared variable is a warning: it may be set at run time

    def _step_problem(self, ref: Reference, step: int | None) -> str | None:
        if not ref.path or not isinstance(ref.path[0], Key):
            return "name a step, e.g. steps.<id>.output"
        step_id = ref.path[0].name
        if step_id not in self._ids:
            known = ", ".join(self._ids) or "none"
            return f"no step has id {step_id!r} (steps: {known})"
        target = self._ids[step_id]
        if step is None:
            return "steps are only readable inside steps"
        if target == step:
            return f"a step cannot read its own output ({step_id!r})"
        if target > step:
            return f"step {step_id!r} runs after this one; a step reads only earlier steps"
        if len(ref.path) >= 2:
            entry = ref.path[1]
            allowed = set(contextkeys.STEP_ENTRY_KEYS)
            if self._types.get(step_id) not in _KNOWN_NON_HTTP_TYPES:  # http, or unknown
                allowed |= contextkeys.HTTP_STEP_EXTRA_KEYS
            if not isinstance(entry, Key) or entry.name not in allowed:
                shown = entry.name if isinstance(entry, Key) else str(entry)
                return (
                    f"a step entry has no {shown!r} (expected one of: {', '.join(sorted(allowed))})"
                )
        return None

    @staticmethod
    def _error(loc: Loc, message: str) -> Finding:
        where = format_loc(loc)
        return Finding(
            loc=loc, severity="error", message=f"{where}: {message}" if where else message
        )


def _holds_template(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, list):
        return any(_holds_template(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_template(item) for item in value.values())
    return False


def _member(
    name: str | None, segment: Key | Index | object, allowed: frozenset[str], root: str
) -> str | None:
    if segment is None:
        return None
    if name is None or name not in allowed:
        shown = name if name is not None else str(segment)
        return f"{root} has no {shown!r} (expected one of: {', '.join(sorted(allowed))})"
    return None
