"""The plan: what a sync would change, from the desired state and the live one.

Desired is the job repository at one snapshot; live is what the stores hold. Files are
compared by content hash (Git blob ids), so only files that changed are read and
validated: a re-sync of an unchanged repository parses nothing. An invalid file never
deletes or changes the live job of its path or its name; safety rules refuse plans
that would delete every job or more than a fraction of them. Jobs that did not come
from the repository (imported ones: no source path) are never deleted or disabled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vecron import paths
from vecron.backends.database import Database, JobRecord, VariableSource
from vecron.backends.objectstore import ObjectStore
from vecron.errors import DocumentSyntaxError, ObjectNotFound
from vecron.reconciler.sources import Snapshot, SourceEntry
from vecron.spec.layout import FILES_DIR, VARIABLES_FILE
from vecron.spec.loader import load_text
from vecron.spec.models import Job, dump_definition
from vecron.spec.validate import (
    Diagnostic,
    Finding,
    check_document,
    check_variables,
    format_loc,
    locate_findings,
)

REMOVED_REASON = "file removed from the repository"
Action = Literal["create", "update", "delete", "disable"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptions:
    """The safety switches of a sync.

    ``allow_empty`` lets a sync delete every job (otherwise an empty or wrong path or
    branch is refused); ``confirm_prune`` lets it delete more than ``prune_threshold``
    of the jobs; with ``prune`` off a removed file only disables its job.
    """

    allow_empty: bool = False
    confirm_prune: bool = False
    prune: bool = True
    prune_threshold: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredJob:
    name: str
    path: str
    content_hash: str
    job: Job
    definition: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One changed field of a definition; ``old``/``new`` are absent for adds/removes."""

    field: str
    old: Any = None
    new: Any = None
    kind: Literal["+", "-", "~"] = "~"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobChange:
    action: Action
    name: str
    path: str | None
    live: JobRecord | None = None
    desired: DesiredJob | None = None
    diff: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidFile:
    path: str
    diagnostics: tuple[Diagnostic, ...]
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VariablesChange:
    values: Mapping[str, str]
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    source: str
    commit: str | None
    changes: tuple[JobChange, ...] = ()
    unchanged: tuple[str, ...] = ()
    invalid: tuple[InvalidFile, ...] = ()
    file_puts: tuple[SourceEntry, ...] = ()
    file_deletes: tuple[str, ...] = ()
    variables: VariablesChange | None = None
    refusal: str | None = None
    live_count: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.file_puts or self.file_deletes or self.variables)

    def count(self, action: Action) -> int:
        return sum(change.action == action for change in self.changes)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "created": self.count("create"),
            "updated": self.count("update"),
            "deleted": self.count("delete"),
            "disabled": self.count("disable"),
            "unchanged": len(self.unchanged),
            "invalid": len(self.invalid),
        }

    def errors(self) -> list[dict[str, Any]]:
        """Per-file errors as stored with the sync run."""
        return [
            {"path": d.path, "line": d.line, "column": d.column, "message": d.message}
            for invalid in self.invalid
            for d in invalid.diagnostics
            if d.severity == "error"
        ]


def canonical_json(data: Any) -> bytes:
    """The bytes vecron stores for a definition: stable, readable, UTF-8."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


async def build_plan(
    snapshot: Snapshot,
    *,
    database: Database,
    objects: ObjectStore,
    options: SyncOptions | None = None,
) -> Plan:
    """Compare ``snapshot`` with the stores; reads only files whose hash changed."""
    options = options or SyncOptions()
    live_jobs = await database.list_jobs()
    live_by_name = {job.name: job for job in live_jobs}
    live_by_path = {job.source_path: job for job in live_jobs if job.source_path}

    job_entries = sorted(snapshot.of_kind("job"), key=lambda e: e.path)
    changed: list[SourceEntry] = []
    unchanged: dict[str, SourceEntry] = {}  # name -> entry
    for entry in job_entries:
        live = live_by_path.get(entry.path)
        if (
            live is not None
            and live.content_hash == entry.blob_id
            and live.disabled_reason != REMOVED_REASON
        ):
            unchanged[live.name] = entry
        else:
            changed.append(entry)

    variables_entry = snapshot.entries.get(VARIABLES_FILE)
    wanted = [e.path for e in changed] + ([VARIABLES_FILE] if variables_entry else [])
    contents = snapshot.read(wanted)
    invalid: list[InvalidFile] = []
    global_variables, variables_invalid = _variables(contents.get(VARIABLES_FILE))
    if variables_invalid:
        invalid.append(variables_invalid)

    desired: dict[str, DesiredJob] = {}
    claimed = {name: entry.path for name, entry in unchanged.items()}
    for entry in changed:
        text = contents[entry.path].decode("utf-8-sig", errors="replace")
        result = _desired_job(entry, text, global_variables, claimed)
        if isinstance(result, InvalidFile):
            invalid.append(result)
        else:
            desired[result.name] = result
            claimed[result.name] = entry.path

    protected = {f.path for f in invalid} | {f.name for f in invalid if f.name}
    changes: list[JobChange] = []
    for name, want in sorted(desired.items()):
        live = live_by_name.get(name)
        if live is None:
            changes.append(JobChange(action="create", name=name, path=want.path, desired=want))
        elif live.source_path in protected and live.source_path != want.path:
            # Its own file is invalid now: the live job stays as it is until that is fixed.
            message = (
                f"job {name!r} is defined in {live.source_path}, which is invalid; fix it first"
            )
            diagnostic = Diagnostic(
                path=want.path, line=1, column=1, severity="error", message=message
            )
            invalid.append(InvalidFile(path=want.path, diagnostics=(diagnostic,), name=name))
        else:
            diff = await _diff(objects, live, want)
            changes.append(
                JobChange(
                    action="update", name=name, path=want.path, live=live, desired=want, diff=diff
                )
            )
    desired_names = set(desired) | set(unchanged)
    # A job with no source path was not synced from the repository (`vecron import`): a
    # sync never removes it; a file that defines its name takes it over (an update).
    managed = [job for job in live_jobs if job.source_path is not None]
    for live in managed:
        if live.name in desired_names or live.name in protected or live.source_path in protected:
            continue
        if options.prune:
            changes.append(
                JobChange(action="delete", name=live.name, path=live.source_path, live=live)
            )
        elif live.disabled_reason != REMOVED_REASON:
            changes.append(
                JobChange(action="disable", name=live.name, path=live.source_path, live=live)
            )

    file_puts, file_deletes = await _file_changes(snapshot, database)
    plan = Plan(
        source=snapshot.description,
        commit=snapshot.commit,
        changes=tuple(changes),
        unchanged=tuple(sorted(unchanged)),
        invalid=tuple(invalid),
        file_puts=file_puts,
        file_deletes=file_deletes,
        variables=None
        if variables_invalid
        else await _variables_change(database, global_variables),
        live_count=len(managed),
    )
    return _with_refusal(plan, options)


def _with_refusal(plan: Plan, options: SyncOptions) -> Plan:
    removing = plan.count("delete") + plan.count("disable")
    if not removing or not plan.live_count:
        return plan
    refusal = None
    if removing >= plan.live_count and not options.allow_empty:
        refusal = (
            f"this sync would remove all {plan.live_count} jobs: is the path or ref wrong? "
            "Pass --allow-empty to do it anyway"
        )
    elif removing > options.prune_threshold * plan.live_count and not (
        options.confirm_prune or options.allow_empty
    ):
        refusal = (
            f"this sync would remove {removing} of {plan.live_count} jobs (more than "
            f"{options.prune_threshold:.0%}): pass --confirm-prune to do it"
        )
    if refusal is None:
        return plan
    return Plan(**{**_fields(plan), "refusal": refusal})


def _fields(plan: Plan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in plan.__dataclass_fields__}


def _variables(data: bytes | None) -> tuple[dict[str, Any], InvalidFile | None]:
    if data is None:
        return {}, None
    text = data.decode("utf-8-sig", errors="replace")
    try:
        parsed = load_text(text)
    except DocumentSyntaxError as exc:
        diagnostic = Diagnostic(
            path=VARIABLES_FILE,
            line=exc.line,
            column=exc.column,
            severity="error",
            message=exc.message,
        )
        return {}, InvalidFile(path=VARIABLES_FILE, diagnostics=(diagnostic,))
    findings = check_variables(parsed)
    if any(f.severity == "error" for f in findings):
        located = locate_findings(
            VARIABLES_FILE, text, [f for f in findings if f.severity == "error"]
        )
        return {}, InvalidFile(path=VARIABLES_FILE, diagnostics=tuple(located))
    if isinstance(parsed, dict) and isinstance(parsed.get("variables"), dict):
        parsed = parsed["variables"]
    return dict(parsed or {}), None


def _desired_job(
    entry: SourceEntry, text: str, global_variables: Mapping[str, Any], claimed: Mapping[str, str]
) -> DesiredJob | InvalidFile:
    try:
        data = load_text(text, json_file=entry.path.endswith(".json"))
    except DocumentSyntaxError as exc:
        diagnostic = Diagnostic(
            path=entry.path, line=exc.line, column=exc.column, severity="error", message=exc.message
        )
        return InvalidFile(path=entry.path, diagnostics=(diagnostic,))
    job, findings = check_document(data, global_variables=global_variables)
    name = data.get("name") if isinstance(data, dict) else None
    errors: list[Finding] = [f for f in findings if f.severity == "error"]
    if isinstance(name, str) and name in claimed:
        errors.append(
            Finding(
                loc=("name",),
                severity="error",
                message=f"name: job name {name!r} is already used by {claimed[name]}",
            )
        )
    if job is None or errors:
        located = locate_findings(entry.path, text, errors)
        return InvalidFile(
            path=entry.path,
            diagnostics=tuple(located),
            name=name if isinstance(name, str) else None,
        )
    return DesiredJob(
        name=job.name,
        path=entry.path,
        content_hash=entry.blob_id,
        job=job,
        definition=dump_definition(job),
    )


async def _diff(objects: ObjectStore, live: JobRecord, want: DesiredJob) -> tuple[FieldChange, ...]:
    changes: list[FieldChange] = []
    if live.source_path != want.path:
        changes.append(FieldChange(field="(source path)", old=live.source_path, new=want.path))
    if live.disabled_reason == REMOVED_REASON:
        changes.append(FieldChange(field="(enabled)", old=False, new=want.job.enabled))
    try:
        old = json.loads(await objects.get(live.minio_definition_path))
    except (ObjectNotFound, ValueError):
        old = None
    if old is None:
        changes.append(FieldChange(field="(definition)", kind="+", new="rewritten"))
    else:
        changes.extend(diff_values(old, dict(want.definition)))
    return tuple(changes)


def diff_values(old: Any, new: Any, loc: tuple[str | int, ...] = ()) -> Iterator[FieldChange]:
    """The field-level differences between two definitions (plain JSON data)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            here = (*loc, key)
            if key not in new:
                yield FieldChange(field=format_loc(here), old=old[key], kind="-")
            elif key not in old:
                yield FieldChange(field=format_loc(here), new=new[key], kind="+")
            else:
                yield from diff_values(old[key], new[key], here)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from diff_values(a, b, (*loc, index))
    elif old != new or type(old) is not type(new):
        yield FieldChange(field=format_loc(loc) or "(definition)", old=old, new=new)


async def _file_changes(
    snapshot: Snapshot, database: Database
) -> tuple[tuple[SourceEntry, ...], tuple[str, ...]]:
    live = await database.list_repo_files()
    prefix = FILES_DIR + "/"
    desired = {entry.path.removeprefix(prefix): entry for entry in snapshot.of_kind("file")}
    puts = tuple(
        entry
        for rel, entry in sorted(desired.items())
        if rel not in live or live[rel].content_hash != entry.blob_id
    )
    deletes = tuple(sorted(rel for rel in live if rel not in desired))
    return puts, deletes


async def _variables_change(
    database: Database, variables: Mapping[str, Any]
) -> VariablesChange | None:
    stored = await database.get_variables(decrypt=False)
    # A name set with `vecron vars` wins over the repository's: not a pending change.
    overridden = {name for name, record in stored.items() if record.source != VariableSource.REPO}
    values = {name: _as_text(value) for name, value in variables.items() if name not in overridden}
    live = {name: record for name, record in stored.items() if record.source == VariableSource.REPO}
    added = tuple(sorted(n for n in values if n not in live))
    changed = tuple(sorted(n for n in values if n in live and live[n].value != values[n]))
    removed = tuple(sorted(n for n in live if n not in values))
    if not (added or changed or removed):
        return None
    return VariablesChange(values=values, added=added, changed=changed, removed=removed)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def definition_object_paths(job_id: str, content_hash: str) -> Sequence[str]:
    """The version object first, then the current pointer (the order apply writes)."""
    return (paths.definition_version_path(job_id, content_hash), paths.definition_path(job_id))
