"""``vecron export`` and ``vecron import``: jobs out as redacted files or a Git commit,
and back in as new jobs with their secrets restored.

No secret value is ever printed: output names secrets, never shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vecron.errors import UsageError
from vecron.settings import Settings
from vecron.spec.models import VARIABLE_NAME_PATTERN

_NAME = re.compile(VARIABLE_NAME_PATTERN)


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write jobs as redacted JSON/YAML files, a ZIP, or a commit on a Git branch",
        description="Export jobs with every secret replaced by a ${secret:NAME} placeholder. "
        "Each file lists the placeholders it needs and a metadata block.",
    )
    export.add_argument("jobs", nargs="*", metavar="JOB", help="job names (or --all)")
    export.add_argument("--all", action="store_true", help="export every job")
    export.add_argument(
        "--out",
        type=Path,
        metavar="DIR|FILE",
        help="a folder (one file per job), a .json/.yaml file (an array) or a .zip",
    )
    export.add_argument("--format", choices=("json", "yaml"), default="json")
    export.add_argument("--zip", action="store_true", help="one ZIP of one file per job")
    export.add_argument(
        "--repo-layout",
        action="store_true",
        help="write plain job files under DIR/jobs/ (a job repository), no metadata",
    )
    export.add_argument(
        "--redact-pattern",
        metavar="REGEX",
        help="also redact values under keys this matches (case-insensitive search); "
        "adds to VECRON_REDACT_PATTERN",
    )
    export.add_argument("--exported-by", metavar="NAME", help="default: the user name")
    git = export.add_argument_group("Git")
    git.add_argument(
        "--git",
        nargs="?",
        const="",
        metavar="URL|PATH",
        help="commit the job files on a branch of the job repository and push it "
        "(default repository: VECRON_REPO)",
    )
    git.add_argument("--branch", default=None, help="the export branch (vecron/export)")
    git.add_argument("--base", default=None, help="the branch a new export branch starts from")
    git.add_argument("--path", default=None, help="the job repository's folder inside it")
    git.add_argument(
        "--no-push", action="store_true", help="commit in --clone-dir only, do not push"
    )
    git.add_argument("--clone-dir", type=Path, default=None, metavar="DIR")
    export.set_defaults(handler=_export)

    import_ = commands.add_parser(
        "import",
        help="create jobs from exported files (JSON, YAML, arrays, ZIPs)",
        description="Validate each job document, ask for the secrets its placeholders need, "
        "and create each as a new job (a taken name gets -copy-1, -copy-2, ...).",
    )
    import_.add_argument("files", nargs="+", type=Path, metavar="FILE")
    import_.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a placeholder's value (repeatable); prefer --secrets-file or the prompt",
    )
    import_.add_argument(
        "--secrets-file", type=Path, metavar="FILE", help="NAME=VALUE lines ('#' comments)"
    )
    import_.add_argument(
        "--dry-run", action="store_true", help="validate and check secrets; create nothing"
    )
    import_.add_argument("--format", choices=("text", "json"), default="text")
    import_.set_defaults(handler=_import)


# --- export ----------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from vecron.stores import open_stores
    from vecron.transfer.export import ExportMetadata, ExportTarget, collect, write_export
    from vecron.transfer.redact import compile_pattern

    if bool(args.jobs) == args.all:
        raise UsageError("name the jobs to export, or pass --all")
    if (args.git is None) == (args.out is None):
        raise UsageError("give --out DIR|FILE, or --git for a commit")
    settings = Settings.from_env()
    patterns = [p for p in (settings.redact_pattern, args.redact_pattern) if p]
    pattern = compile_pattern("|".join(f"(?:{p})" for p in patterns))
    meta = ExportMetadata.now(args.exported_by)

    async def run() -> Any:
        async with open_stores(settings) as stores:
            return await collect(stores, args.jobs, key_pattern=pattern)

    jobs = asyncio.run(run())
    if args.git is not None:
        return _export_git(args, settings, jobs, meta)
    target = ExportTarget(
        out=args.out,
        fmt=args.format,
        zip=args.zip,
        repo_layout=args.repo_layout,
        single=len(args.jobs) == 1,
    )
    for path in write_export(jobs, target, meta):
        print(f"wrote {path}")
    _print_jobs(jobs)
    return 0


def _export_git(args: argparse.Namespace, settings: Settings, jobs: Any, meta: Any) -> int:
    from vecron.transfer.gitexport import DEFAULT_BRANCH, export_to_git

    repo = args.git or settings.repo
    if not repo:
        raise UsageError("--git needs a repository: --git URL|PATH, or set VECRON_REPO")
    if args.no_push and args.clone_dir is None:
        raise UsageError("--no-push keeps the commit in --clone-dir DIR; give one")
    result = export_to_git(
        jobs,
        repo=repo,
        meta=meta,
        branch=args.branch or DEFAULT_BRANCH,
        base=args.base,
        path=args.path or settings.repo_path,
        fmt=args.format,
        push=not args.no_push,
        clone_dir=args.clone_dir,
    )
    if result.commit is None:
        print(f"nothing to commit: the {len(jobs)} job(s) already match branch {result.branch}")
        return 0
    for change in result.changes:
        print(f"{change.action} {change.path} (job {change.name})")
    where = "pushed to" if result.pushed else "committed on"
    print(f"{where} branch {result.branch}: {result.commit[:12]}")
    _print_jobs(jobs)
    return 0


def _print_jobs(jobs: Sequence[Any]) -> None:
    for job in jobs:
        redacted = len(job.redacted)
        line = f"exported {job.name}: {redacted} secret(s) redacted"
        if job.placeholders:
            line += f"; needs {', '.join(p.name for p in job.placeholders)}"
        print(line)


# --- import ----------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from vecron.stores import open_stores
    from vecron.transfer.formats import read_inputs
    from vecron.transfer.importer import (
        import_jobs,
        missing_message,
        missing_secrets,
        validate,
    )

    given = parse_secrets(args.secret, args.secrets_file)
    if args.secret:
        print(
            "warning: a secret given as an argument can stay in shell history and show in "
            "ps; prefer --secrets-file or the prompt",
            file=sys.stderr,
        )
    documents = read_inputs(args.files)
    settings = Settings.from_env()

    async def run() -> tuple[list[Any], list[Any] | None]:
        async with open_stores(settings) as stores:
            stored = await stores.database.get_variables(decrypt=False)
            candidates = validate(
                documents, global_variables={n: r.value for n, r in stored.items()}
            )
            for candidate in candidates:
                for diagnostic in candidate.diagnostics:
                    print(diagnostic, file=sys.stderr)
            valid = [c for c in candidates if c.job is not None]
            secret_names = {n for n, r in stored.items() if r.secret}
            missing = missing_secrets(valid, secret_names, given)
            if missing and sys.stdin is not None and sys.stdin.isatty():
                given.update(_prompt(missing))
                missing = missing_secrets(valid, secret_names, given)
            if missing:
                from vecron.errors import VecronError

                raise VecronError(missing_message(missing))
            if args.dry_run:
                return candidates, None
            return candidates, await import_jobs(candidates, stores, secrets=given)

    candidates, outcomes = asyncio.run(run())
    needed = {name for c in candidates for name in c.secrets}
    unused = sorted(set(given) - needed)
    if unused:
        print(f"note: not used by any job, not stored: {', '.join(unused)}", file=sys.stderr)
    if outcomes is None:
        return _report_dry_run(candidates, args.format)
    return _report(outcomes, args.format)


def _report_dry_run(candidates: Sequence[Any], fmt: str) -> int:
    rows = [{"document": c.label, "valid": c.job is not None} for c in candidates]
    if fmt == "json":
        print(json.dumps({"dry_run": True, "documents": rows}, indent=2, ensure_ascii=False))
    else:
        for c in candidates:
            print(f"{'valid  ' if c.job is not None else 'invalid'} {c.label}")
        print("dry run: nothing was created")
    return 0 if all(c.job is not None for c in candidates) else 1


def _report(outcomes: Sequence[Any], fmt: str) -> int:
    created = [o for o in outcomes if o.created]
    if fmt == "json":
        rows = [
            {
                "document": o.label,
                "created": o.created,
                "name": o.name,
                "job_id": o.job_id,
                "renamed_from": o.renamed_from,
                "error": o.error,
            }
            for o in outcomes
        ]
        print(json.dumps({"jobs": rows, "created": len(created)}, indent=2, ensure_ascii=False))
    else:
        for o in outcomes:
            if o.created:
                renamed = f" (renamed from {o.renamed_from})" if o.renamed_from else ""
                print(f"created {o.name}{renamed} as {o.job_id} from {o.label}")
            else:
                print(f"failed  {o.label}: {o.error}")
        names = ", ".join(o.name for o in created if o.name) or "none"
        print(f"imported {len(created)} of {len(outcomes)} job(s); created: {names}")
    return 0 if len(created) == len(outcomes) else 1


def parse_secrets(pairs: Sequence[str], secrets_file: Path | None) -> dict[str, str]:
    """``NAME=VALUE`` pairs from the arguments, then the file (which wins).

    Error messages name the argument's position or the file's line, never the text,
    which may be a secret.
    """
    values: dict[str, str] = {}
    lines: list[tuple[str, str]] = [(f"--secret #{i + 1}", pair) for i, pair in enumerate(pairs)]
    if secrets_file is not None:
        text = secrets_file.read_text(encoding="utf-8-sig")
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append((f"{secrets_file}:{number}", line))
    for where, pair in lines:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name) or len(name) > 128:
            raise UsageError(f"{where}: expected NAME=VALUE with NAME a variable name")
        if not value:
            raise UsageError(f"{where}: the value of {name} is empty")
        values[name] = value
    return values


def _prompt(missing: Mapping[str, Sequence[str]]) -> dict[str, str]:
    import getpass

    values = {}
    for name, labels in sorted(missing.items()):
        value = getpass.getpass(f"value of secret {name} (for {', '.join(labels)}): ")
        if not value:
            raise UsageError(f"no value for {name}: nothing imported")
        values[name] = value
    return values
