"""The database role: its contract and the values that cross it.

The database holds metadata and object paths, never whole definitions or contexts
(DESIGN.md, "Stores"). Records are frozen values; a change is written with a method
of :class:`Database` and read back as a new record.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from vecron import paths

MASK = "******"
"""What :meth:`Database.get_variables` shows instead of a secret value."""


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"

    @property
    def active(self) -> bool:
        """Queued or running: the execution still counts against ``allow_concurrent``."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({ExecutionStatus.QUEUED, ExecutionStatus.RUNNING})
FINAL_STATUSES = frozenset(set(ExecutionStatus) - ACTIVE_STATUSES)


class TriggerSource(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    WEBHOOK = "webhook"


class SyncStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    DEGRADED = "degraded"
    REFUSED = "refused"
    FAILED = "failed"


class VariableSource(StrEnum):
    REPO = "repo"  # variables.yaml of the job repository; replaced by every sync
    CLI = "cli"  # `vecron vars set`; a sync never touches it


SYNC_COUNTS = ("created", "updated", "deleted", "disabled", "unchanged", "invalid")
"""The counters of a sync run, in the order ``vecron`` prints them."""


def new_id() -> str:
    """A new random id (UUID 4, canonical text form)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


def strip_credentials(source: str) -> str:
    """``source`` without the secret part of a URL's user info.

    ``https://user:token@host/repo`` and ``https://token@host/repo`` become
    ``https://host/repo``; ``ssh://git:pw@host/repo`` keeps its user name
    (``ssh://git@host/repo``). Paths and scp-style ``git@host:repo`` are unchanged.
    """
    parts = urllib.parse.urlsplit(source)
    if not parts.scheme or "@" not in parts.netloc:
        return source
    userinfo, _, host = parts.netloc.rpartition("@")
    if parts.scheme in ("ssh", "git+ssh", "sftp"):
        host = f"{userinfo.partition(':')[0]}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """One live job. ``webhook_secret`` is the plaintext: the store encrypts it on write.

    ``enabled`` is the definition's ``enabled`` and not disabled by vecron or an operator
    (``disabled_reason`` says why). ``content_hash`` is ``None`` while a create is in
    flight (row first, then the object, then the hash). ``minio_definition_path`` defaults
    to :func:`vecron.paths.definition_path` of the job id.
    """

    job_id: str = field(default_factory=new_id)
    name: str
    enabled: bool = True
    disabled_reason: str | None = None
    minio_definition_path: str = ""
    content_hash: str | None = None
    definition_version: int = 0
    source_path: str | None = None
    source_commit: str | None = None
    schedule_type: str | None = None
    schedule_expression: str | None = None
    timezone: str | None = None
    next_run_at: datetime | None = None
    webhook_id: str | None = None
    webhook_secret: str | None = None
    webhook_enabled: bool = False
    webhook_rate_limit: int | None = None
    concurrent_execution_allowed: bool = False
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    last_sync_id: str | None = None

    def __post_init__(self) -> None:
        if not self.minio_definition_path:
            object.__setattr__(self, "minio_definition_path", paths.definition_path(self.job_id))

    def __repr__(self) -> str:
        # The secret stays out of logs and tracebacks.
        hidden = None if self.webhook_secret is None else MASK
        return (
            f"JobRecord(job_id={self.job_id!r}, name={self.name!r}, enabled={self.enabled!r}, "
            f"content_hash={self.content_hash!r}, definition_version={self.definition_version}, "
            f"webhook_id={self.webhook_id!r}, webhook_secret={hidden!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRecord:
    """One run of one job, from its creation to its final status.

    ``definition_hash`` is the content hash of the definition version it runs.
    ``step_statuses`` is a short summary for ``vecron show``: a list of
    ``{id, status, started_at, completed_at, error}``; the context itself lives in the
    object store at ``minio_context_path``. ``leased_until`` and ``worker_id`` belong to
    the worker that claimed it (:meth:`Database.claim_execution`).
    """

    execution_id: str = field(default_factory=new_id)
    job_id: str
    job_name: str
    definition_hash: str
    status: ExecutionStatus = ExecutionStatus.QUEUED
    trigger_source: TriggerSource
    trigger_data: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    attempt: int = 1
    scheduled_at: datetime | None = None
    queued_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    leased_until: datetime | None = None
    worker_id: str | None = None
    error: str | None = None
    minio_context_path: str | None = None
    step_statuses: Sequence[Mapping[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Coerce plain strings, so that a bad status fails here and not in the database.
        object.__setattr__(self, "status", ExecutionStatus(self.status))
        object.__setattr__(self, "trigger_source", TriggerSource(self.trigger_source))


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRecord:
    """An API token: its name, role and the SHA-256 of its secret (never the secret)."""

    token_id: str = field(default_factory=new_id)
    name: str
    role: str
    token_hash: str
    created_at: datetime = field(default_factory=utc_now)
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableRecord:
    """A global variable. ``value`` is the plaintext, or :data:`MASK` for a masked secret."""

    name: str
    value: str
    secret: bool = False
    source: VariableSource = VariableSource.CLI
    updated_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", VariableSource(self.source))

    def __repr__(self) -> str:
        shown = MASK if self.secret else self.value
        return (
            f"VariableRecord(name={self.name!r}, value={shown!r}, secret={self.secret!r}, "
            f"source={self.source.value!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRecord:
    """One sync run: where from, which commit, what it did, and the per-file errors.

    ``errors`` is a list of ``{path, line, column, message}``.
    """

    sync_id: str
    started_at: datetime
    finished_at: datetime | None = None
    source: str
    ref: str | None = None
    commit: str | None = None
    status: SyncStatus = SyncStatus.RUNNING
    created: int = 0
    updated: int = 0
    deleted: int = 0
    disabled: int = 0
    unchanged: int = 0
    invalid: int = 0
    errors: Sequence[Mapping[str, Any]] = field(default_factory=list)
    message: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SyncStatus(self.status))

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in SYNC_COUNTS}


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoFileRecord:
    """A file of the job repository's ``files/`` folder, as last synced to the object store."""

    path: str
    content_hash: str
    size: int
    updated_at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledFire:
    """One fire for :meth:`Database.fire_schedules`: move ``job_id``'s ``next_run_at`` from
    ``expected`` to ``next_run_at`` and, when that lands, store ``execution`` (if any).

    With ``exclusive``, a queued or running execution of the job turns ``execution``
    into a ``skipped`` one, finished at once, with ``refusal`` as its error.
    """

    job_id: str
    expected: datetime
    next_run_at: datetime | None
    execution: ExecutionRecord | None = None
    exclusive: bool = False
    refusal: str = "a run is in flight and the job does not allow concurrent runs"


@dataclass(frozen=True, slots=True, kw_only=True)
class FireResult:
    """What :meth:`Database.fire_schedules` did with one fire.

    ``advanced`` is False when another scheduler (or a sync) moved the job first: then
    nothing was written. ``execution`` is what was stored (None when the fire had none).
    """

    advanced: bool
    execution: ExecutionRecord | None = None

    @property
    def skipped(self) -> bool:
        return self.execution is not None and self.execution.status == ExecutionStatus.SKIPPED


@runtime_checkable
class Database(Protocol):
    """Where vecron keeps jobs, executions, variables, sync runs and synced repository files.

    Guarantees every implementation must give (tests/backends/test_database.py checks
    them against each one):

    - Each method is one transaction: it happens entirely or not at all.
    - Datetimes go in aware (a naive one is refused with ``ValueError``) and come out
      aware, in UTC, with microseconds kept.
    - Ids are UUID strings in canonical form; an id that is not a UUID is simply not
      found.
    - Lookups that find nothing raise :class:`~vecron.errors.JobNotFound` or
      :class:`~vecron.errors.ExecutionNotFound`; a broken uniqueness rule raises
      :class:`AlreadyExists`; an unreachable server raises
      :class:`~vecron.errors.BackendUnavailable`.
    - Secrets (``JobRecord.webhook_secret``, secret variables) are encrypted at rest
      with the :class:`~vecron.crypto.SecretBox` the store was opened with; records
      carry plaintext.
    - Claims are exclusive: of any number of concurrent :meth:`claim_execution` calls
      for one execution, across processes and machines, at most one wins, and a lease
      that has not expired is never taken over.
    - ``create_execution`` with an idempotency key is race-safe: concurrent calls with
      the same ``(job_id, idempotency_key)`` make one row and all return it.
    """

    def describe(self) -> str:
        """The database URL with the password hidden, for logs and error messages."""
        ...

    async def migrate(self) -> None:
        """Upgrade the schema to the newest revision.

        Idempotent, and safe when several processes start at once. Raises
        :class:`~vecron.errors.ConfigurationError` when the database's schema is newer
        than this version of vecron.
        """
        ...

    async def close(self) -> None:
        """Release connections; closes the engine only when the store created it."""
        ...

    # -- jobs --------------------------------------------------------------------------

    async def list_jobs(self, *, include_disabled: bool = True) -> list[JobRecord]:
        """Every job, by name. ``include_disabled=False`` keeps those with ``enabled``."""
        ...

    async def get_job(self, name: str) -> JobRecord: ...

    async def get_job_by_id(self, job_id: str) -> JobRecord: ...

    async def get_job_by_webhook(self, webhook_id: str) -> JobRecord: ...

    async def insert_job(self, job: JobRecord) -> None:
        """Store a new job as given. A taken name, webhook id or job id: AlreadyExists."""
        ...

    async def insert_jobs(self, records: Sequence[JobRecord]) -> None:
        """Store several new jobs in one transaction: all of them, or none."""
        ...

    async def update_jobs(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """Apply :meth:`update_job` changes to several jobs (by id) in one transaction.

        A missing job raises :class:`~vecron.errors.JobNotFound` and nothing is written.
        """
        ...

    async def update_job(self, job_id: str, /, **changes: Any) -> JobRecord:
        """Change some columns of a job and return the job as stored.

        Keys are :class:`JobRecord` field names (not ``job_id`` or ``created_at``;
        anything else is a ``TypeError``). ``updated_at`` is set to now unless given.
        When ``content_hash`` changes to a new non-null value and ``definition_version``
        is not among the changes, ``definition_version`` goes up by one in the same
        statement, so callers never read-modify-write it.
        """
        ...

    async def delete_job(self, job_id: str) -> None:
        """Delete a job; its executions stay as history. Deleting a missing job is a no-op."""
        ...

    # -- variables -----------------------------------------------------------------------

    async def set_variable(
        self, name: str, value: str, *, secret: bool, source: VariableSource | str
    ) -> None:
        """Create or replace a global variable; a secret is stored encrypted."""
        ...

    async def get_variables(self, *, decrypt: bool = False) -> dict[str, VariableRecord]:
        """Every variable by name; secret values are :data:`MASK` unless ``decrypt``.

        With ``decrypt``, a secret that another key encrypted raises
        :class:`~vecron.errors.ConfigurationError`.
        """
        ...

    async def delete_variable(self, name: str) -> bool:
        """Delete a variable; ``True`` when it existed."""
        ...

    async def replace_repo_variables(self, values: Mapping[str, str]) -> None:
        """Make the repository-sourced variables exactly ``values``, atomically.

        Variables set from the command line are left alone and win: a name that is
        already a ``cli`` variable is not taken over by the repository. Rows whose
        value does not change are not written (``updated_at`` stays).
        """
        ...

    # -- repository files ----------------------------------------------------------------

    async def list_repo_files(self) -> dict[str, RepoFileRecord]: ...

    async def put_repo_file(self, path: str, content_hash: str, size: int) -> None:
        """Create or replace the record of one file (``path`` relative to ``files/``)."""
        ...

    async def delete_repo_file(self, path: str) -> None:
        """Forget one file; a missing one is a no-op."""
        ...

    # -- sync runs -----------------------------------------------------------------------

    async def start_sync(self, *, source: str, ref: str | None) -> str:
        """Record a sync that starts now (status ``running``) and return its id.

        Credentials in ``source`` (a URL's user info) are stripped before it is stored.
        """
        ...

    async def finish_sync(
        self,
        sync_id: str,
        *,
        status: SyncStatus | str,
        commit: str | None,
        counts: Mapping[str, int],
        errors: Sequence[Mapping[str, Any]],
        message: str | None,
    ) -> None:
        """Record how a sync ended. ``counts`` keys are from :data:`SYNC_COUNTS`
        (missing ones are 0, unknown ones a ``ValueError``); an unknown ``sync_id`` is a
        ``LookupError``."""
        ...

    async def last_sync(self) -> SyncRecord | None:
        """The most recently started sync, finished or not."""
        ...

    async def list_syncs(self, limit: int = 20) -> list[SyncRecord]:
        """The newest ``limit`` syncs, newest first."""
        ...

    # -- API tokens ------------------------------------------------------------------------

    async def create_token(self, token: TokenRecord) -> None:
        """Store a new token; :class:`~vecron.errors.AlreadyExists` for a taken name."""
        ...

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The token whose secret hashes to ``token_hash``, if any."""
        ...

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, by name."""
        ...

    async def delete_token(self, name: str) -> bool:
        """Revoke a token; ``True`` when it existed."""
        ...

    async def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that a token was used at ``when``."""
        ...

    # -- executions ----------------------------------------------------------------------

    async def create_execution(
        self, record: ExecutionRecord, *, exclusive: bool = False
    ) -> ExecutionRecord:
        """Store a new execution and return it as stored.

        With an ``idempotency_key``, when the job already has an execution with that
        key, nothing is written and the existing execution is returned (race-safe).
        Keys are scoped to the job. An execution id that is taken: AlreadyExists.
        With ``exclusive``, a queued or running execution of the same job (other than
        the one with this idempotency key) refuses the insert with
        :class:`~vecron.errors.RunInFlight`; the check and the insert are atomic, so of
        concurrent exclusive creates at most one succeeds.
        """
        ...

    async def claim_execution(
        self,
        execution_id: str,
        *,
        worker_id: str,
        lease_seconds: float,
        attempt: int | None = None,
    ) -> ExecutionRecord | None:
        """Take an execution for ``worker_id`` for ``lease_seconds``, atomically.

        Claimable: ``queued``, or ``running`` with an expired lease (its worker died);
        with an ``attempt``, only while the execution is at that attempt (a message of
        an earlier attempt does not take a queued retry).
        The claimed record is returned with status ``running``, ``worker_id`` and
        ``leased_until`` set, and ``started_at`` set on the first claim (``attempt`` is
        left alone: a take-over continues the attempt). ``None`` when
        it is not claimable: leased by anyone (the same worker included: claiming
        twice is a no-op) or finished. A missing id: ExecutionNotFound.
        """
        ...

    async def renew_lease(self, execution_id: str, *, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease to now + ``lease_seconds``; ``False`` unless ``worker_id`` holds
        it (the execution is ``running`` and claimed by that worker)."""
        ...

    async def finish_execution(
        self,
        execution_id: str,
        *,
        worker_id: str | None,
        status: ExecutionStatus | str,
        error: str | None,
        step_statuses: Sequence[Mapping[str, Any]] | None = None,
        context_path: str | None = None,
    ) -> bool:
        """Record a final status, ``finished_at`` = now, and release the lease.

        With a ``worker_id``, only that worker's running claim is finished, and
        ``False`` means the lease was lost (another worker took the execution over) and
        nothing was written. ``worker_id=None`` finishes it whatever its state (the
        scheduler recording ``skipped``, an operator cancelling). ``step_statuses`` and
        ``context_path`` left ``None`` keep the stored values. A status that is not
        final (queued, running) is a ``ValueError``; a missing id ExecutionNotFound.
        """
        ...

    async def update_execution(
        self, execution_id: str, /, *, claimed_by: str | None = None, **changes: Any
    ) -> bool:
        """Change some columns (:class:`ExecutionRecord` field names other than
        ``execution_id``; anything else is a ``TypeError``). With ``claimed_by``, only
        while that worker was the last to claim it (it runs it, or it finished it): ``False``
        means another worker (or the dead letter) took it over and nothing was written.
        A missing id: ExecutionNotFound."""
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord: ...

    async def list_executions(
        self,
        *,
        job_name: str | None = None,
        status: ExecutionStatus | str | Collection[ExecutionStatus | str] | None = None,
        trigger_source: TriggerSource | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionRecord]:
        """Executions, newest ``queued_at`` first; ``since <= queued_at < until``.
        ``status`` may be one status or several."""
        ...

    async def running_executions(self, job_id: str) -> int:
        """How many executions of the job are queued or running."""
        ...

    # -- the schedule ----------------------------------------------------------------------

    async def due_jobs(self, now: datetime, *, limit: int = 500) -> list[JobRecord]:
        """Enabled jobs whose ``next_run_at`` is at or before ``now``, earliest first."""
        ...

    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of an enabled job, or None."""
        ...

    async def advance_schedule(
        self, job_id: str, *, expected: datetime | None, next_run_at: datetime | None
    ) -> bool:
        """Move a job's ``next_run_at`` from ``expected`` to ``next_run_at``, atomically.

        False when it no longer is ``expected`` (another scheduler fired it, or a sync
        changed it): the caller must not fire. This compare-and-set is what makes a fire
        happen once among any number of schedulers.
        """
        ...

    async def fire_schedules(self, fires: Sequence[ScheduledFire]) -> list[FireResult]:
        """Apply many fires in one transaction, each as :meth:`advance_schedule` followed
        by :meth:`create_execution` when the advance landed; one result per fire, in order.
        """
        ...

    async def jobs_awaiting_delay(self) -> list[JobRecord]:
        """Enabled fixed-delay jobs with no next run: their last run has to complete."""
        ...

    async def last_finished_execution(self, job_id: str) -> ExecutionRecord | None:
        """The job's most recently finished execution (for fixed-delay schedules)."""
        ...
