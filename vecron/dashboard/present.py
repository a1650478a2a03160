"""What the pages show, computed from the stores: schedules in words, next fire times in
the job's timezone, 30-day success rates, and Job Contexts with their secrets masked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from vecron.backends.database import ExecutionRecord, ExecutionStatus, JobRecord
from vecron.errors import ScheduleError, SpecError
from vecron.spec import schedules
from vecron.spec.models import Job, Schedule
from vecron.spec.sensitive import (
    MASKED,
    SENSITIVE_HEADERS,
    SENSITIVE_KEYS,
    embedded_password,
    sensitive_name,
)
from vecron.webhook.api_views import FINISHED_RUNS, RATED_RUNS
from vecron.webhook.state import ServerState

WINDOW = timedelta(days=30)
"""The history the jobs and executions pages cover."""
RATE_ROWS = 1000
"""The most finished runs a job's 30-day success rate reads (the newest ones)."""
NEXT_RUNS = 3
"""Next fire times shown per job."""
CONCURRENCY = 8


def describe_schedule(schedule: Schedule) -> str:
    """The schedule in words, e.g. "at 02:00:00, Monday through Friday (Asia/Ho_Chi_Minh)"."""
    tz = schedule.timezone
    if schedule.type == "cron":
        try:
            words = schedules.parse_cron(schedule.expression).describe()
        except (ScheduleError, SpecError, ValueError) as exc:
            return f"invalid cron expression: {exc}"
    elif schedule.type == "fixed_rate":
        words = f"every {schedule.interval}"
    elif schedule.type == "fixed_delay":
        words = f"{schedule.interval} after each run completes"
    else:
        at = schedules.aware(schedule.at, schedules.zone(tz))
        words = f"once, at {at.astimezone(schedules.zone(tz)).strftime('%Y-%m-%d %H:%M:%S')}"
    if schedule.end_at is not None:
        end = schedules.aware(schedule.end_at, schedules.zone(tz))
        words += f", until {end.astimezone(schedules.zone(tz)).strftime('%Y-%m-%d %H:%M')}"
    return f"{words} ({tz})"


def next_fires(
    schedule: Schedule,
    *,
    count: int,
    after: datetime | None = None,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` fire times after ``after`` (now), in UTC. A fixed-delay
    schedule has one: the next depends on when that run completes."""
    moment = after or datetime.now(UTC)
    fires: list[datetime] = []
    try:
        while len(fires) < count:
            fire = schedules.next_fire(schedule, after=moment, anchor=anchor)
            if fire is None:
                break
            fires.append(fire)
            if schedule.type in ("fixed_delay", "one_time"):
                break
            moment = fire
    except (ScheduleError, SpecError, ValueError, OverflowError):
        return fires
    return fires


@dataclass(frozen=True, slots=True, kw_only=True)
class JobView:
    """One job as the jobs page shows it."""

    job: JobRecord
    definition: Job | None
    tz: tzinfo
    schedule_words: str | None
    next_runs: list[datetime]
    last: ExecutionRecord | None
    success_rate: float | None
    rated: int
    capped: bool
    recent: list[ExecutionRecord] = field(default_factory=list)

    @property
    def manual(self) -> bool:
        return self.definition is not None and self.definition.triggers.manual


async def job_view(
    state: ServerState, job: JobRecord, *, now: datetime, recent: int = 0
) -> JobView:
    """The facts of one job, with its last ``recent`` executions when asked."""
    definition = await state.definition(job)
    schedule = definition.schedule if definition is not None else None
    tz = schedules.zone(schedule.timezone if schedule else schedules.DEFAULT_TIMEZONE)
    database = state.stores.database
    finished = await database.list_executions(
        job_name=job.name, status=FINISHED_RUNS, since=now - WINDOW, limit=RATE_ROWS
    )
    latest = await database.list_executions(job_name=job.name, limit=max(recent, 1))
    rated = [run for run in finished if run.status in RATED_RUNS]
    succeeded = sum(run.status == ExecutionStatus.SUCCEEDED for run in rated)
    next_runs: list[datetime] = []
    if schedule is not None and job.enabled and definition is not None and definition.scheduled:
        if schedule.type == "fixed_delay":
            next_runs = [job.next_run_at] if job.next_run_at else []
        else:
            after = job.next_run_at - timedelta(microseconds=1) if job.next_run_at else now
            next_runs = next_fires(schedule, count=NEXT_RUNS, after=after, anchor=job.created_at)
    return JobView(
        job=job,
        definition=definition,
        tz=tz,
        schedule_words=None if schedule is None else describe_schedule(schedule),
        next_runs=next_runs,
        last=latest[0] if latest else None,
        success_rate=succeeded / len(rated) if rated else None,
        rated=len(rated),
        capped=len(finished) >= RATE_ROWS,
        recent=latest if recent else [],
    )


async def job_views(state: ServerState, jobs: Sequence[JobRecord]) -> list[JobView]:
    now = datetime.now(UTC)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: JobRecord) -> JobView:
        async with gate:
            return await job_view(state, job, now=now)

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def mask_context(value: Any, secrets: Sequence[str] = (), key: str = "") -> Any:
    """``value`` (a Job Context) with secrets shown as ``(sensitive)``.

    A value is masked by its key (``password``, ``token``, a name such as
    ``DB_PASSWORD``, a credential header), the password inside a URL or connection
    string is masked, and any stored secret's value is cut out of every string. The
    runtime keeps secrets out of the context already; this is the second line.
    """
    if isinstance(value, dict):
        return {k: mask_context(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_context(item, secrets, key) for item in value]
    if isinstance(value, str):
        lowered = key.lower()
        if value and (
            lowered in SENSITIVE_KEYS or lowered in SENSITIVE_HEADERS or sensitive_name(key)
        ):
            return MASKED
        span = embedded_password(value)
        if span is not None:
            value = value[: span[0]] + MASKED + value[span[1] :]
        for secret in secrets:
            if len(secret) >= 4 and secret in value:
                value = value.replace(secret, MASKED)
        return value
    if value is not None and not isinstance(value, bool) and key and sensitive_name(key):
        return MASKED
    return value
