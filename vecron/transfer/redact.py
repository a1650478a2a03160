"""Redaction: every secret of a definition becomes a ``${secret:NAME}`` placeholder.

What is a secret is decided in one place, :func:`vecron.spec.sensitive.find_sensitive`
(sensitive keys, credential headers, passwords inside URLs and connection strings,
secret-looking variable names), plus an optional key pattern. A value that already is a
placeholder (``${secret:…}``, ``${VAR}``, ``{{…}}``) is left as it is, so redacting
twice changes nothing. A number under a sensitive key is redacted too; its secret is
its text, so it comes back as a string.

Placeholder names are derived from the job and the field, in upper case:
``INVOICE_IMPORT_DOWNLOAD_AUTH_PASSWORD`` for ``steps[0].config.auth.password`` of the
job ``invoice-import`` whose first step is ``download``. A name already used in the
definition for another value gets ``_2``, ``_3``… so one name never stands for two
values. Names are valid variable names of at most 128 characters.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vecron.errors import UsageError
from vecron.spec.sensitive import find_sensitive
from vecron.spec.validate import format_loc

#: ``${secret:NAME}`` (not the escaped ``$${…}``).
SECRET_REFERENCE = re.compile(r"(?<!\$)\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_NAME_LENGTH = 128  # as VariableName in vecron.spec.models
_NOT_NAME = re.compile(r"[^A-Z0-9]+")

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Placeholder:
    """A secret a definition needs: its name and the fields that use it."""

    name: str
    fields: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "fields": list(self.fields)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Redaction:
    """A redacted definition, the placeholders it needs and what was redacted.

    ``redacted`` maps each field that held a secret to the placeholder that replaced it
    (never the secret itself).
    """

    definition: dict[str, Any]
    placeholders: tuple[Placeholder, ...]
    redacted: Mapping[str, str]


def compile_pattern(text: str | None) -> re.Pattern[str] | None:
    """The ``--redact-pattern`` / ``VECRON_REDACT_PATTERN`` regex, case-insensitive."""
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise UsageError(f"invalid redaction pattern {text!r}: {exc}") from None


def redact(
    definition: Mapping[str, Any], *, key_pattern: re.Pattern[str] | None = None
) -> Redaction:
    """``definition`` (plain JSON data) with every literal secret replaced by a placeholder."""
    result: dict[str, Any] = copy.deepcopy(dict(definition))
    job_name = str(result.get("name") or "job")
    taken = set(secret_references(result))
    redacted: dict[str, str] = {}
    for found in list(find_sensitive(result, key_pattern=key_pattern, numbers=True)):
        if not found.is_literal:
            continue
        partial = found.start > 0 or found.end < len(found.value)
        name = _unique(secret_name(job_name, _field_words(result, found.loc), partial), taken)
        taken.add(name)
        _set(
            result,
            found.loc,
            found.value[: found.start] + f"${{secret:{name}}}" + found.value[found.end :],
        )
        redacted[format_loc(found.loc)] = name
    return Redaction(definition=result, placeholders=placeholders(result), redacted=redacted)


def secret_references(data: Any, loc: Loc = ()) -> dict[str, list[str]]:
    """Every ``${secret:NAME}`` in ``data``: name -> the fields that use it, in order."""
    found: dict[str, list[str]] = {}

    def walk(node: Any, here: Loc) -> None:
        if isinstance(node, str):
            for match in SECRET_REFERENCE.finditer(node):
                fields = found.setdefault(match[1], [])
                if format_loc(here) not in fields:
                    fields.append(format_loc(here))
        elif isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, (*here, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*here, index))

    walk(data, loc)
    return found


def placeholders(definition: Mapping[str, Any]) -> tuple[Placeholder, ...]:
    """The secrets ``definition`` needs, by name."""
    return tuple(
        Placeholder(name=name, fields=tuple(fields))
        for name, fields in sorted(secret_references(definition).items())
    )


def fill_secrets(data: Any, values: Mapping[str, str]) -> Any:
    """``data`` with each ``${secret:NAME}`` that ``values`` knows replaced by its value
    (what a run sees); for checks and tests, never for anything that is stored."""
    if isinstance(data, str):
        return SECRET_REFERENCE.sub(lambda m: values.get(m[1], m[0]), data)
    if isinstance(data, Mapping):
        return {key: fill_secrets(value, values) for key, value in data.items()}
    if isinstance(data, list):
        return [fill_secrets(item, values) for item in data]
    return data


def secret_name(job_name: str, words: list[str | int], partial: bool = False) -> str:
    """The placeholder name for a field: ``JOB_STEP_FIELD``, a valid variable name."""
    parts = [job_name, *(str(word) for word in words)]
    if partial and not str(words[-1] if words else "").upper().endswith("PASSWORD"):
        parts.append("password")
    name = _NOT_NAME.sub("_", "_".join(parts).upper()).strip("_") or "SECRET"
    if name[0].isdigit():
        name = "_" + name
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8].upper()
        name = f"{name[: MAX_NAME_LENGTH - 9]}_{digest}"
    return name


def _field_words(definition: Mapping[str, Any], loc: Loc) -> list[str | int]:
    steps = definition.get("steps")
    if loc[:1] == ("steps",) and len(loc) > 1 and isinstance(loc[1], int):
        step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        step_id = step.get("id") if isinstance(step, Mapping) else None
        rest = [part for part in loc[2:] if part != "config"]
        return [str(step_id or f"step{loc[1]}"), *rest]
    if loc == ("triggers", "webhook", "secret"):
        return ["webhook", "secret"]
    if loc[:1] == ("variables",):
        return list(loc[1:])
    return list(loc)


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    counter = 2
    while True:
        suffix = f"_{counter}"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        counter += 1


def _set(data: Any, loc: Loc, value: str) -> None:
    node = data
    for part in loc[:-1]:
        node = node[part]
    node[loc[-1]] = value
