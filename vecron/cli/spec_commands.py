"""Commands on job files: ``validate``, ``schema`` and ``schedule next``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecron.errors import ScheduleError, UsageError

GITHUB_ESCAPES = {"%": "%25", "\r": "%0D", "\n": "%0A"}


def register(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check job files: schema, references, variables, schedules",
        description="Check job files (or directories of them, recursively).",
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    validate.add_argument("--format", choices=("text", "json", "github"), default="text")
    validate.add_argument("--strict", action="store_true", help="treat warnings as errors")
    validate.add_argument(
        "--variables",
        type=Path,
        metavar="FILE",
        help="global variables file (default: the repository's variables.yaml)",
    )
    validate.set_defaults(handler=_validate)

    schema = commands.add_parser("schema", help="print the JSON Schema of a job file")
    schema.set_defaults(handler=_schema)

    schedule = commands.add_parser("schedule", help="schedule tools")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", metavar="COMMAND")
    schedule_commands.required = True
    nxt = schedule_commands.add_parser(
        "next",
        help="print the next fire times of a cron expression",
        description="Print the next fire times of EXPR, one ISO-8601 UTC instant a line.",
    )
    nxt.add_argument("expression", metavar="EXPR")
    nxt.add_argument("--timezone", default=None, metavar="TZ", help="default Asia/Ho_Chi_Minh")
    nxt.add_argument("--after", default=None, metavar="ISO", help="default: now")
    nxt.add_argument("--count", type=int, default=5, metavar="N")
    nxt.set_defaults(handler=_schedule_next)


def _validate(args: argparse.Namespace) -> int:
    from vecron.spec.validate import load_variables, validate_paths

    global_variables = load_variables(args.variables) if args.variables else None
    report = validate_paths(args.paths, global_variables=global_variables)
    diagnostics = report.diagnostics
    failed = bool(report.errors(strict=args.strict))
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if args.format == "json":
        document = {
            "valid": not failed,
            "files": len(report.files),
            "errors": errors,
            "warnings": warnings,
            "diagnostics": [
                {
                    "path": d.path,
                    "line": d.line,
                    "column": d.column,
                    "severity": d.severity,
                    "field": d.field,
                    "message": d.message,
                }
                for d in diagnostics
            ],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for d in diagnostics:
            if args.format == "github":
                level = "error" if d.severity == "error" or args.strict else "warning"
                message = "".join(GITHUB_ESCAPES.get(c, c) for c in d.message)
                print(
                    f"::{level} file={d.path},line={d.line},col={d.column},title=vecron::{message}"
                )
            else:
                print(d)
        verdict = "invalid" if failed else "valid"
        summary = f"{len(report.files)} file(s) checked: {errors} error(s), {warnings} warning(s)"
        print(f"{summary}: {verdict}", file=sys.stderr)
    return 1 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    from vecron.spec.schema import job_schema_text

    sys.stdout.write(job_schema_text())
    return 0


def _schedule_next(args: argparse.Namespace) -> int:
    from vecron.spec import schedules

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    tz = schedules.zone(args.timezone or schedules.DEFAULT_TIMEZONE)
    if args.after is None:
        after = datetime.now(UTC)
    else:
        try:
            after = datetime.fromisoformat(args.after.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--after {args.after!r} is not an ISO-8601 date-time") from None
        after = schedules.aware(after, tz)
    cron = schedules.parse_cron(args.expression)
    printed = 0
    for fire in cron.fire_times(after, tz):
        print(fire.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        printed += 1
        if printed >= args.count:
            break
    if printed == 0:
        raise ScheduleError(f"{args.expression!r} never fires after {after.isoformat()}")
    return 0
