"""Import: job documents in, validated, their secrets stored, new jobs created.

Each document is validated as ``vecron validate`` does (the same messages, located in
its file). The secrets its ``${secret:NAME}`` placeholders name must be stored or
given before anything is written. An imported job is a new job: a new job id, its
definition in the object store, a row without a source path (so a sync of the job
repository never deletes it; a file that defines the same name takes it over).

Per job, the write order leaves nothing half-made: the definition objects first
(invisible without a row), then the job's secrets (encrypted, as ``vecron vars set
--secret`` stores them), then the row, which is the moment the job exists. A failure
before the row removes the objects again.
"""

from __future__ import annotations

import logging
import re
import secrets as random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vecron import paths
from vecron.backends.database import Database, JobRecord, VariableSource, new_id
from vecron.errors import AlreadyExists, ConfigurationError, VecronError
from vecron.reconciler.apply import schedule_text
from vecron.reconciler.plan import canonical_json
from vecron.reconciler.sources import git_blob_id
from vecron.spec import schedules
from vecron.spec.models import Job, dump_definition
from vecron.spec.validate import Diagnostic, Finding, check_document, locate_findings
from vecron.stores import Stores
from vecron.transfer.formats import InputDocument
from vecron.transfer.redact import secret_references

log = logging.getLogger("vecron.transfer")
COPY_SUFFIX = "-copy-"
MAX_NAME_LENGTH = 128  # as JobName in vecron.spec.models
_NAME_ATTEMPTS = 5  # renames tried when another writer takes a name at the same moment


@dataclass(slots=True, kw_only=True)
class Candidate:
    """One document to import: its job when valid, and what validation found."""

    document: InputDocument
    job: Job | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.document.label

    @property
    def secrets(self) -> list[str]:
        """The secret names this job's placeholders need, sorted."""
        if self.job is None:
            return []
        return sorted(secret_references(dump_definition(self.job)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How importing one document ended: ``name`` and ``job_id`` when it was created."""

    label: str
    created: bool
    name: str | None = None
    job_id: str | None = None
    renamed_from: str | None = None
    error: str | None = None


def validate(
    documents: Sequence[InputDocument], *, global_variables: Mapping[str, Any] | None = None
) -> list[Candidate]:
    """Validate every document; errors and warnings located in its file."""
    candidates = []
    for document in documents:
        candidate = Candidate(document=document)
        candidates.append(candidate)
        if document.error is not None:
            error = document.error
            candidate.diagnostics.append(
                Diagnostic(
                    path=document.shown,
                    line=error.line,
                    column=error.column,
                    severity="error",
                    message=error.message,
                )
            )
            continue
        job, findings = check_document(document.definition, global_variables=global_variables)
        located = [
            Finding(
                loc=(*document.prefix, *f.loc), severity=f.severity, message=f.message, key=f.key
            )
            for f in findings
        ]
        candidate.diagnostics.extend(locate_findings(document.shown, document.text, located))
        candidate.job = job
    return candidates


def missing_secrets(
    candidates: Sequence[Candidate], stored: set[str], given: Mapping[str, str]
) -> dict[str, list[str]]:
    """Secret name -> the documents that need it, for names neither stored nor given."""
    missing: dict[str, list[str]] = {}
    for candidate in candidates:
        for name in candidate.secrets:
            if name not in stored and name not in given:
                missing.setdefault(name, []).append(candidate.label)
    return missing


async def stored_secret_names(database: Database) -> set[str]:
    """The names of the secrets the database holds (values are not read)."""
    return {
        n for n, record in (await database.get_variables(decrypt=False)).items() if record.secret
    }


async def import_jobs(
    candidates: Sequence[Candidate],
    stores: Stores,
    *,
    secrets: Mapping[str, str],
    now: datetime | None = None,
) -> list[Outcome]:
    """Create a job for each valid candidate; store the ``secrets`` its placeholders use.

    Refuses (:class:`VecronError`, nothing written) when a valid candidate needs a
    secret that is neither stored nor in ``secrets``. One job's failure does not stop
    the others; each outcome says what happened.
    """
    now = now or datetime.now(UTC)
    database = stores.database
    missing = missing_secrets(
        [c for c in candidates if c.job is not None], await stored_secret_names(database), secrets
    )
    if missing:
        raise VecronError(missing_message(missing))
    if secrets:
        await _check_secret_key(database)
    taken = {record.name for record in await database.list_jobs()}
    outcomes = []
    for candidate in candidates:
        if candidate.job is None:
            errors = [str(d) for d in candidate.diagnostics if d.severity == "error"]
            outcomes.append(
                Outcome(label=candidate.label, created=False, error="; ".join(errors) or "invalid")
            )
            continue
        try:
            outcome = await create_job(candidate, stores, secrets=secrets, taken=taken, now=now)
        except (VecronError, OSError) as exc:
            outcome = Outcome(label=candidate.label, created=False, error=str(exc))
        outcomes.append(outcome)
    return outcomes


def missing_message(missing: Mapping[str, Sequence[str]]) -> str:
    lines = [
        f"  {name} (needed by {', '.join(labels)})" for name, labels in sorted(missing.items())
    ]
    return (
        "nothing imported: these secrets have no value; give each with --secret NAME=VALUE "
        "or --secrets-file, or run on a terminal to be asked:\n" + "\n".join(lines)
    )


async def _check_secret_key(database: Database) -> None:
    # As `vecron vars set --secret`: a secret written with another key than the running
    # system's would only fail later, in the worker.
    try:
        await database.get_variables(decrypt=True)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"nothing imported: {exc}. Set VECRON_SECRET_KEY as the running vecron has it"
        ) from None


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name-copy-1``, ``name-copy-2``… whichever is not taken."""
    if name not in taken:
        return name
    counter = 1
    while True:
        suffix = f"{COPY_SUFFIX}{counter}"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        counter += 1


async def create_job(
    candidate: Candidate,
    stores: Stores,
    *,
    secrets: Mapping[str, str],
    taken: set[str],
    now: datetime,
) -> Outcome:
    """Create one valid candidate as a new job under a name not in ``taken`` (which it
    extends). A name another writer took meanwhile costs one more try with the next
    suffix, after the objects written for it are removed."""
    assert candidate.job is not None
    original = candidate.job.name
    database, objects = stores.database, stores.objects
    for _ in range(_NAME_ATTEMPTS):
        name = free_name(original, taken)
        taken.add(name)
        job = candidate.job.model_copy(update={"name": name})
        definition = dump_definition(job)
        data = canonical_json(definition)
        content_hash = git_blob_id(data)
        record = imported_record(job, job_id=new_id(), content_hash=content_hash, now=now)
        written = [
            paths.definition_version_path(record.job_id, content_hash),
            record.minio_definition_path,
        ]
        try:
            for path in written:
                await objects.put(path, data, content_type="application/json")
            for secret in candidate.secrets:
                if secret in secrets:
                    await database.set_variable(
                        secret, secrets[secret], secret=True, source=VariableSource.CLI
                    )
            await database.insert_job(record)
        except AlreadyExists:
            await _remove(objects, written)
            log.info("job name %s was taken meanwhile; trying the next", name)
            continue
        except BaseException:
            await _remove(objects, written)
            raise
        log.info("imported job %s (%s) from %s", name, record.job_id, candidate.label)
        return Outcome(
            label=candidate.label,
            created=True,
            name=name,
            job_id=record.job_id,
            renamed_from=original if name != original else None,
        )
    raise VecronError(f"no free name for {original!r} after {_NAME_ATTEMPTS} tries")


async def _remove(objects: Any, written: Sequence[str]) -> None:
    for path in written:
        try:
            await objects.delete(path)
        except (VecronError, OSError):
            log.warning("could not remove %s after a failed import", path)


def imported_record(job: Job, *, job_id: str, content_hash: str, now: datetime) -> JobRecord:
    """The row of a new imported job: as a sync would make it, without a source path."""
    webhook = job.triggers.webhook
    webhook_secret: str | None = None
    if webhook is not None:
        if webhook.secret is None:
            webhook_secret = random.token_urlsafe(32)  # as a sync does; rotate to change
        elif not _SECRET.search(webhook.secret):
            webhook_secret = webhook.secret
    next_run = None
    if job.enabled and job.scheduled and job.schedule is not None:
        next_run = schedules.next_fire(job.schedule, after=now, anchor=now)
    return JobRecord(
        job_id=job_id,
        name=job.name,
        enabled=job.enabled,
        content_hash=content_hash,
        definition_version=1,
        source_path=None,
        source_commit=None,
        schedule_type=job.schedule.type if job.schedule else None,
        schedule_expression=schedule_text(job),
        timezone=job.schedule.timezone if job.schedule else None,
        next_run_at=next_run,
        webhook_id=random.token_urlsafe(24) if webhook is not None else None,
        webhook_secret=webhook_secret,
        webhook_enabled=job.webhook_enabled,
        webhook_rate_limit=webhook.rate_limit if webhook else None,
        concurrent_execution_allowed=job.allow_concurrent,
        created_at=now,
        updated_at=now,
    )


_SECRET = re.compile(r"\$\{secret:")
