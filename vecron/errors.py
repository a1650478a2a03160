"""The one error tree of vecron.

Every error subclasses the nearest builtin, so callers that do not know vecron can
still catch it. Messages are built from the ids and values involved. The command line
turns these into exit codes in one place (:mod:`vecron.cli`).
"""

from __future__ import annotations


class VecronError(Exception):
    """Base of every error vecron raises on purpose."""


class SpecError(VecronError, ValueError):
    """Something in a job definition is wrong.

    ``offset`` is the 0-based character offset inside the text that was parsed (an
    expression, a template, a condition), when the error can point at one; the
    validator adds it to the column of the YAML node that held the text.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class CronSyntaxError(SpecError):
    """A cron expression does not parse."""


class ReferenceSyntaxError(SpecError):
    """A ``{{…}}`` reference or a ``${…}`` variable does not parse."""


class ConditionSyntaxError(SpecError):
    """A ``when`` or filter condition does not parse in the safe condition language."""


class ConditionEvaluationError(SpecError):
    """A condition parsed but could not be evaluated (e.g. comparing a string to a number)."""


class ReferenceResolutionError(VecronError, LookupError):
    """A reference points at a path that the Job Context does not have."""


class ScheduleError(SpecError):
    """A schedule (interval, timezone, ``at``, ``end_at``) is invalid."""


class UsageError(VecronError):
    """The command line was used wrongly (exit code 2)."""


class DocumentSyntaxError(SpecError):
    """A job file is not well-formed YAML or JSON. ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class ObjectNotFound(VecronError, LookupError):
    """No object at this path in the object store."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no object at {path!r}")
        self.path = path


class JobNotFound(VecronError, LookupError):
    """No job with this name or id."""

    def __init__(self, job: str) -> None:
        super().__init__(f"no job {job!r}")
        self.job = job


class ExecutionNotFound(VecronError, LookupError):
    """No execution with this id."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id!r}")
        self.execution_id = execution_id


class BackendUnavailable(VecronError, ConnectionError):
    """A backend (database, object store, queue, Redis) cannot be reached or refused us.

    The message names the backend and its address without credentials.
    """


class ConfigurationError(VecronError, ValueError):
    """A setting (``VECRON_*``) is missing or malformed."""


class SourceError(VecronError):
    """The job repository cannot be read: a bad URL, a missing ref or path, bad credentials."""


class SyncRefused(VecronError):
    """A sync was refused by a safety rule (an empty repository, a mass deletion)."""


class AlreadyExists(VecronError, ValueError):
    """A write would break a uniqueness rule (a job name, a webhook id, an execution id).

    ``what`` names the rule (``"job name"``, ``"webhook id"``, …); ``value`` is the value
    that is already taken.
    """

    def __init__(self, what: str, value: str) -> None:
        super().__init__(f"{what} {value!r} is already taken")
        self.what = what
        self.value = value


class SyncNotFound(VecronError, LookupError):
    """No sync run with this id."""

    def __init__(self, sync_id: str) -> None:
        super().__init__(f"no sync run {sync_id!r}")
        self.sync_id = sync_id


class StepFailed(VecronError, RuntimeError):
    """A step failed in a way its author can act on.

    The message names the step's target and what went wrong, and never a secret.
    ``output`` is what the step produced before failing (e.g. an HTTP response with an
    unexpected status), kept in the Job Context for debugging.
    """

    def __init__(self, message: str, *, output: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.output = output


class TriggerRefused(VecronError):
    """A trigger was refused: the job is disabled, that trigger is off, or a run is in
    flight and the job does not allow concurrent runs (``reason`` says which)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RunInFlight(VecronError):
    """A run of the job is queued or running, and the new one must not start beside it."""

    def __init__(self, job: str) -> None:
        super().__init__(f"job {job!r} is already running and does not allow concurrent runs")
        self.job = job


class SignatureRefused(VecronError):
    """A webhook delivery's signature was refused (HTTP 401).

    ``reason`` is short and safe to send back to the caller (``"missing signature"``,
    ``"stale timestamp"``, ``"bad signature"``, …): it never holds the secret or the
    signature vecron expected.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"signature refused: {reason}")
        self.reason = reason


class PayloadTooLarge(VecronError, ValueError):
    """A request body is larger than ``limit`` bytes (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than the limit of {limit} bytes")
        self.limit = limit


class UnsupportedContentType(VecronError, ValueError):
    """A request body's Content-Type is not one vecron reads (HTTP 415)."""

    def __init__(self, content_type: str | None, *, detail: str = "") -> None:
        shown = repr(content_type) if content_type else "(none)"
        super().__init__(
            f"unsupported content type {shown}{detail}: send application/json (or a "
            "+json type), application/x-www-form-urlencoded or text/*"
        )
        self.content_type = content_type


class MalformedPayload(VecronError, ValueError):
    """A request body does not parse as its Content-Type says (HTTP 400)."""


class RateLimited(VecronError):
    """Over a rate limit (HTTP 429); retry after ``retry_after_seconds``."""

    def __init__(self, key: str, *, retry_after_seconds: float) -> None:
        super().__init__(f"rate limit of {key!r} reached; retry in {retry_after_seconds:.1f} s")
        self.key = key
        self.retry_after_seconds = retry_after_seconds


class CircuitOpen(StepFailed):
    """A step's target failed too often in a row: calls to it fail fast, without a
    connection attempt, until its cool-down has passed (see :mod:`vecron.backends.breaker`).

    ``target`` is the breaker's key (``https://host:443``, a DSN without its password);
    ``retry_after_seconds`` is how long until a call may try the target again;
    ``cooldown_seconds`` is the breaker's cool-down.
    """

    def __init__(
        self,
        target: str,
        *,
        failures: int,
        retry_after_seconds: float,
        cooldown_seconds: float,
        probing: bool = False,
    ) -> None:
        if probing:
            reason = (
                f"circuit breaker for {target} is half-open: another call is probing it "
                f"(its cool-down of {cooldown_seconds:g} s has passed); "
                f"failing fast, retry in {retry_after_seconds:.1f} s"
            )
        else:
            reason = (
                f"circuit breaker for {target} is open after {failures} consecutive "
                f"failures; failing fast without connecting for the {cooldown_seconds:g} s "
                f"cool-down, {retry_after_seconds:.1f} s left"
            )
        super().__init__(reason)
        self.target = target
        self.failures = failures
        self.retry_after_seconds = retry_after_seconds
        self.cooldown_seconds = cooldown_seconds
        self.probing = probing
