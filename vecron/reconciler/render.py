"""Plans as text (in the manner of ``terraform plan``) and as JSON for bots."""

from __future__ import annotations

import json
from typing import Any

from vecron.reconciler.plan import FieldChange, Plan
from vecron.spec.sensitive import mask, sensitive_name

_SYMBOL = {"create": "+", "update": "~", "delete": "-", "disable": "!"}
_MAX_VALUE = 70


def plan_text(plan: Plan, *, verb: str = "plan") -> str:
    """The plan for a person: one line per change, field diffs, invalid files, a summary."""
    at = f" at {plan.commit[:12]}" if plan.commit else ""
    lines = [f"vecron {verb}: {plan.source}{at}"]
    lines.append("")
    for change in plan.changes:
        where = change.path or ""
        if change.action == "delete":
            where = f"({where or 'no file'} removed)"
        elif change.action == "disable":
            where = f"({where or 'no file'} removed; pruning is off, so it is disabled)"
        lines.append(f"  {_SYMBOL[change.action]} {change.name:<32} {where}")
        lines.extend(f"      {_field_line(c)}" for c in change.diff)
    for entry in plan.file_puts:
        lines.append(f"  + {entry.path}")
    for relative in plan.file_deletes:
        lines.append(f"  - files/{relative}")
    if plan.variables is not None:
        v = plan.variables
        for name in v.added:
            lines.append(f"  + variable {name} = {_variable(name, v.values[name])}")
        for name in v.changed:
            lines.append(f"  ~ variable {name} = {_variable(name, v.values[name])}")
        for name in v.removed:
            lines.append(f"  - variable {name}")
    for invalid in plan.invalid:
        for d in invalid.diagnostics:
            if d.severity == "error":
                lines.append(f"  x {d}")
        if invalid.name:
            lines.append(f"      (the live job {invalid.name!r} keeps its last good definition)")
    if len(lines) == 2:
        lines.append("  no changes: the stores match the repository")
    lines.append("")
    counts = plan.counts
    lines.append(
        f"Plan: {counts['created']} to create, {counts['updated']} to update, "
        f"{counts['deleted']} to delete, {counts['disabled']} to disable, "
        f"{counts['unchanged']} unchanged, {counts['invalid']} invalid."
    )
    if plan.refusal:
        lines.append(f"Refused: {plan.refusal}.")
    return "\n".join(lines) + "\n"


def plan_json(plan: Plan) -> str:
    """The plan for a bot; diffs carry values, variables only their names."""
    document: dict[str, Any] = {
        "source": plan.source,
        "commit": plan.commit,
        "counts": plan.counts,
        "refused": plan.refusal,
        "changes": [
            {
                "action": c.action,
                "name": c.name,
                "path": c.path,
                "job_id": c.live.job_id if c.live else None,
                "diff": [_field_json(f) for f in c.diff],
            }
            for c in plan.changes
        ],
        "files": {
            "put": [entry.path for entry in plan.file_puts],
            "delete": [f"files/{rel}" for rel in plan.file_deletes],
        },
        "variables": None
        if plan.variables is None
        else {
            "added": list(plan.variables.added),
            "changed": list(plan.variables.changed),
            "removed": list(plan.variables.removed),
        },
        "invalid": [
            {
                "path": invalid.path,
                "name": invalid.name,
                "diagnostics": [
                    {
                        "line": d.line,
                        "column": d.column,
                        "severity": d.severity,
                        "message": d.message,
                    }
                    for d in invalid.diagnostics
                ],
            }
            for invalid in plan.invalid
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


def _field_json(change: FieldChange) -> dict[str, Any]:
    key = change.field.rsplit(".", 1)[-1].split("[", 1)[0]
    return {
        "field": change.field,
        "kind": change.kind,
        "old": mask(change.old, key),
        "new": mask(change.new, key),
    }


def _field_line(change: FieldChange) -> str:
    key = change.field.rsplit(".", 1)[-1].split("[", 1)[0]
    old, new = mask(change.old, key), mask(change.new, key)
    if change.kind == "+":
        return f"+ {change.field}: {_short(new)}"
    if change.kind == "-":
        return f"- {change.field}: {_short(old)}"
    return f"~ {change.field}: {_short(old)} -> {_short(new)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _variable(name: str, value: str) -> str:
    return "(sensitive)" if sensitive_name(name) else _short(value)
