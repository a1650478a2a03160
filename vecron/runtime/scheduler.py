"""The scheduler: fires every due job at its next fire time, once.

The database is the schedule: each job row carries ``next_run_at``. The scheduler
sleeps until the earliest one, then for each due job moves ``next_run_at`` to the
following fire with a compare-and-set (only the scheduler whose update lands fires, so
any number of schedulers fire each (job, fire time) once), creates the execution
(``trigger_source=scheduled``, idempotency key ``scheduled:<fire time>``) and enqueues
it. Edits, disables and deletions by a sync are rows too, so they take effect at the
next wake-up without a restart; a sync can also wake it at once (:meth:`wake`).

After downtime a job may be late by many periods: it fires at most once, as the
``misfire`` policy says (``run_once``: one catch-up run when the missed fire is within
``misfire_grace_seconds``; ``skip``: none), then continues from now. ``fixed_delay``
jobs are not rescheduled at fire time but when their run completes; ``one_time`` jobs
fire once and keep no next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from vecron import paths
from vecron.backends.database import (
    ExecutionRecord,
    FireResult,
    JobRecord,
    ScheduledFire,
    TriggerSource,
)
from vecron.backends.locks import Locks
from vecron.backends.queue import Queue
from vecron.errors import JobNotFound, ObjectNotFound
from vecron.runtime.trigger import load_definition
from vecron.runtime.worker import enqueue
from vecron.spec import schedules
from vecron.spec.models import Job
from vecron.stores import Stores

log = logging.getLogger("vecron.scheduler")
_T = TypeVar("_T")

#: How often the scheduler looks at the database even when nothing is due (new jobs,
#: edits by a sync in another process, fixed-delay runs that completed).
REFRESH_SECONDS = 1.0
#: Definition versions kept in memory (one per job is the usual need).
DEFINITION_CACHE_SIZE = 20_000
#: How often completed fixed-delay runs are looked for (a scan of the enabled jobs).
FIXED_DELAY_SCAN_SECONDS = 5.0
#: How long a (job, fire time) lock lasts. It covers the moment from taking it to the
#: database's compare-and-set (milliseconds); a scheduler that dies holding one delays
#: that fire by at most this long, and another fires it then.
FIRE_LOCK_SECONDS = 2.0
#: A fire later than this is a misfire (the ``misfire`` policy applies: one catch-up
#: run, then on from now). One less late is only late: the fires after it all come,
#: as Quartz's ``misfireThreshold`` (60 s there) has it.
MISFIRE_THRESHOLD_SECONDS = 5.0


#: Definitions read from the object store at once, and publishes in flight at once.
LOAD_CONCURRENCY = 32
PUBLISH_CONCURRENCY = 64


async def _bounded(work: Iterable[Coroutine[Any, Any, _T]], *, limit: int) -> list[_T]:
    """Await ``work`` with at most ``limit`` in flight; the results in order. The first
    error is raised, and what had not started yet is dropped."""
    pending = list(work)
    results: list[_T] = []
    try:
        for start in range(0, len(pending), limit):
            results.extend(await asyncio.gather(*pending[start : start + limit]))
    finally:
        for coroutine in pending[len(results) + limit :]:
            coroutine.close()
    return results


#: A due job, where its schedule moves, how late it is, and why it was missed (if so).
_Plan = tuple[JobRecord, ScheduledFire, float, str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fired:
    """A fire the scheduler handled: ``execution_id`` is None when it was skipped."""

    job_name: str
    fire_time: datetime
    execution_id: str | None
    lateness_seconds: float
    skipped_reason: str | None = None


class Scheduler:
    """Fires due jobs into ``queue``. ``clock`` gives aware UTC datetimes (tests pass one)."""

    def __init__(
        self,
        *,
        stores: Stores,
        queue: Queue,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_seconds: float = REFRESH_SECONDS,
        on_fire: Callable[[Fired], None] | None = None,
        locks: Locks | None = None,
    ) -> None:
        self.stores = stores
        self.queue = queue
        self.locks = locks
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.on_fire = on_fire
        self._wake = asyncio.Event()
        self._definitions: dict[tuple[str, str], Job] = {}
        self._last_scan: datetime | None = None

    def wake(self) -> None:
        """Look at the database now (a sync changed jobs)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
                await self._reschedule_fixed_delay()
                sleep = await self._sleep_seconds()
            except (OSError, ConnectionError) as exc:
                log.error("scheduler: %s", exc)
                sleep = self.refresh_seconds
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waiters, timeout=sleep, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def tick(self) -> list[Fired]:
        """Fire every job that is due now, in one transaction; returns what happened."""
        now = self.clock()
        began = time.perf_counter()
        due = await self.stores.database.due_jobs(now)
        queried = time.perf_counter()
        # Definitions not in memory yet (a new job, a scheduler just started with
        # thousands due) are read from the object store side by side, not one by one.
        await _bounded(
            (self._definition(job) for job in due if self._cached(job) is None),
            limit=LOAD_CONCURRENCY,
        )
        plans: list[_Plan] = []
        for job in due:
            planned = await self._plan(job, now)
            if planned is not None:
                plans.append(planned)
        made = time.perf_counter()
        if plans and self.locks is not None:
            plans = await self._locked(plans)
        if not plans:
            return []
        locked = time.perf_counter()
        results = await self.stores.database.fire_schedules([fire for _, fire, _, _ in plans])
        stored = time.perf_counter()
        fired: list[tuple[Fired, ExecutionRecord | None]] = []
        for (job, fire, lateness, missed), result in zip(plans, results, strict=True):
            if not result.advanced or (fire.execution is None and missed is None):
                continue  # another scheduler fired it, a sync moved it, or nothing to run
            run = None if result.skipped else result.execution
            fired.append((self._event(job, fire, lateness, missed, result), run))

        async def hand_off(event: Fired, run: ExecutionRecord | None) -> Fired:
            if run is None:
                return event
            await enqueue(self.queue, run)
            # Measured at the hand-off to the queue, not at the start of the tick.
            lateness = (self.clock() - event.fire_time).total_seconds()
            return dataclasses.replace(event, lateness_seconds=lateness)

        # Publishes go out side by side (each waits for the queue's ack). A queue that
        # fails fails the tick; what it did not publish, the workers' sweepers do.
        handled = await _bounded(
            (hand_off(event, run) for event, run in fired), limit=PUBLISH_CONCURRENCY
        )
        for event in handled:
            if self.on_fire is not None:
                self.on_fire(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "tick: %d due, %d fired; query %.0f ms, plan %.0f ms, locks %.0f ms, "
                "store %.0f ms, publish %.0f ms",
                len(due),
                len(handled),
                (queried - began) * 1000,
                (made - queried) * 1000,
                (locked - made) * 1000,
                (stored - locked) * 1000,
                (time.perf_counter() - stored) * 1000,
            )
        return handled

    async def _locked(self, plans: list[_Plan]) -> list[_Plan]:
        """The fires whose (job, fire time) lock this scheduler got.

        Without the lock service this raises BackendUnavailable and nothing fires:
        schedulers stop rather than risk a double fire, and catch up when it is back.
        """
        assert self.locks is not None
        names = [paths.fire_lock_name(fire.job_id, fire.expected) for _, fire, _, _ in plans]
        tokens = await self.locks.acquire_many(names, ttl_seconds=FIRE_LOCK_SECONDS)
        return [plan for plan, token in zip(plans, tokens, strict=True) if token is not None]

    async def _plan(self, job: JobRecord, now: datetime) -> _Plan | None:
        """The fire of a due job: where its schedule moves, and the execution to store."""
        fire_time = job.next_run_at
        assert fire_time is not None
        definition = await self._definition(job)
        if definition is None or definition.schedule is None or not definition.scheduled:
            fire = ScheduledFire(job_id=job.job_id, expected=fire_time, next_run_at=None)
            return job, fire, 0.0, None
        schedule = definition.schedule
        following = self._following(definition, fire_time, now, job)
        lateness = (now - fire_time).total_seconds()
        missed = None
        if lateness > schedule.misfire_grace_seconds:
            missed = "outside the grace window"
        elif schedule.misfire == "skip" and lateness > MISFIRE_THRESHOLD_SECONDS:
            missed = "skipped (misfire: skip)"
        execution = None
        if missed is None and job.content_hash is not None:
            execution = ExecutionRecord(
                job_id=job.job_id,
                job_name=job.name,
                definition_hash=job.content_hash,
                trigger_source=TriggerSource.SCHEDULED,
                idempotency_key=f"scheduled:{fire_time.isoformat()}",
                scheduled_at=fire_time,
            )
        fire = ScheduledFire(
            job_id=job.job_id,
            expected=fire_time,
            next_run_at=following,
            execution=execution,
            exclusive=not job.concurrent_execution_allowed,
            refusal=f"job {job.name!r} was still running at its scheduled fire "
            "(allow_concurrent: false)",
        )
        return job, fire, lateness, missed

    def _event(
        self,
        job: JobRecord,
        fire: ScheduledFire,
        lateness: float,
        missed: str | None,
        result: FireResult,
    ) -> Fired:
        if missed is not None:
            policy = missed
            log.warning(
                "job %s missed its fire at %s by %.0f s: %s",
                job.name,
                fire.expected.isoformat(),
                lateness,
                policy,
            )
            return Fired(
                job_name=job.name,
                fire_time=fire.expected,
                execution_id=None,
                lateness_seconds=lateness,
                skipped_reason="misfire",
            )
        assert result.execution is not None
        if result.skipped:
            log.info("job %s: scheduled fire skipped: %s", job.name, fire.refusal)
        return Fired(
            job_name=job.name,
            fire_time=fire.expected,
            execution_id=result.execution.execution_id,
            lateness_seconds=lateness,
            skipped_reason="concurrent" if result.skipped else None,
        )

    async def _sleep_seconds(self) -> float:
        due = await self.stores.database.next_due_at()
        if due is None:
            return self.refresh_seconds
        return max(0.0, min((due - self.clock()).total_seconds(), self.refresh_seconds))

    def _cached(self, job: JobRecord) -> Job | None:
        if job.content_hash is None:
            return None
        return self._definitions.get((job.job_id, job.content_hash))

    async def _definition(self, job: JobRecord) -> Job | None:
        if job.content_hash is None:
            return None
        key = (job.job_id, job.content_hash)
        if key not in self._definitions:
            try:
                definition = await load_definition(
                    self.stores.objects, job.job_id, job.content_hash
                )
            except ObjectNotFound:
                return None
            if len(self._definitions) >= DEFINITION_CACHE_SIZE:
                self._definitions.pop(next(iter(self._definitions)))  # the oldest
            self._definitions[key] = definition
        return self._definitions[key]

    def _following(
        self, definition: Job, fire_time: datetime, now: datetime, job: JobRecord
    ) -> datetime | None:
        schedule = definition.schedule
        assert schedule is not None
        if schedule.type in ("one_time", "fixed_delay"):
            return None  # fixed delay: set when the run completes
        # A misfire continues from now: a scheduler that was down does not fire every
        # missed period. A fire only a little late continues from its own time.
        after = fire_time
        if (now - fire_time).total_seconds() > MISFIRE_THRESHOLD_SECONDS:
            after = max(fire_time, now - timedelta(microseconds=1))
        return schedules.next_fire(schedule, after=after, anchor=job.created_at)

    async def _reschedule_fixed_delay(self, *, force: bool = False) -> None:
        """Give completed fixed-delay jobs their next fire: completion + interval."""
        now = self.clock()
        recent = self._last_scan is not None and (
            (now - self._last_scan).total_seconds() < FIXED_DELAY_SCAN_SECONDS
        )
        if recent and not force:
            return
        self._last_scan = now
        database = self.stores.database
        for job in await database.jobs_awaiting_delay():
            if await database.running_executions(job.job_id):
                continue
            definition = await self._definition(job)
            if definition is None or definition.schedule is None or not definition.scheduled:
                continue
            last = await database.last_finished_execution(job.job_id)
            if last is None or last.finished_at is None:
                continue
            following = schedules.next_fire(
                definition.schedule,
                after=self.clock(),
                anchor=job.created_at,
                last_completed_at=last.finished_at,
            )
            with contextlib.suppress(JobNotFound):
                await database.advance_schedule(job.job_id, expected=None, next_run_at=following)
