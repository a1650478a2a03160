"""The worker: claims executions, runs their steps in order, records everything.

For each execution it claims the row (a lease; a second claim is a no-op), loads the
definition version the execution was created with, builds the Job Context, runs the
steps (evaluating ``when``), writes ``context.json`` after every step and on failure,
and records the status, timings, attempt, error and context path. A failed run with
retries left goes back to the queue after an exponential backoff with jitter
(5 s, 15 s, 1 min, 5 min, 30 min, then 30 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vecron import paths
from vecron.backends.database import ExecutionRecord, ExecutionStatus, TriggerSource
from vecron.backends.objectstore import ObjectStore
from vecron.backends.queue import Delivery, Queue, QueueMessage
from vecron.errors import (
    CircuitOpen,
    ConditionEvaluationError,
    ConfigurationError,
    ObjectNotFound,
    ReferenceResolutionError,
    StepFailed,
)
from vecron.logs import log_context, register_secrets
from vecron.runtime import context as job_context
from vecron.runtime.metrics import Metrics
from vecron.runtime.steps.base import StepExecutor, StepRun
from vecron.runtime.values import ChainedSecrets, EnvironmentSecrets, MappingSecrets, ValueResolver
from vecron.spec.conditions import Column, Ref, evaluate, parse_condition
from vecron.spec.models import Job
from vecron.spec.references import resolve
from vecron.stores import Stores

log = logging.getLogger("vecron.worker")

BACKOFF_SECONDS = (5, 15, 60, 300, 1800)
DEFINITION_CACHE_SIZE = 1024
VARIABLES_TTL_SECONDS = 2.0
LEASE_SECONDS = 60.0
#: The message field with a queued retry's "not before", in seconds since the epoch.
NOT_BEFORE = "not_before"
#: The message field with the attempt the message is for.
ATTEMPT = "attempt"
#: Seconds the worker waits before asking a failing queue again.
FETCH_RETRY_SECONDS = 1.0
#: Who holds an execution while the dead letter records it.
DEAD_LETTER_WORKER = "dead-letter"


def backoff_seconds(attempt: int) -> float:
    """The delay before retry number ``attempt`` (1-based), with +-10 % jitter."""
    base = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
    return base * random.uniform(0.9, 1.1)


@dataclass(slots=True, kw_only=True)
class RunOutcome:
    status: ExecutionStatus
    error: str | None = None
    step_statuses: list[dict[str, Any]] = field(default_factory=list)
    #: The soonest a retry can help: a step's target has an open circuit breaker.
    retry_after_seconds: float = 0.0
    #: The lease was lost mid-run: another worker runs it now.
    lost: bool = False


@dataclass(slots=True, kw_only=True)
class _Execution:
    """The state of one execution while its steps run."""

    record: ExecutionRecord
    job: Job
    context: dict[str, Any]
    context_path: str
    variables: Mapping[str, Any]
    secrets: ChainedSecrets
    secret_names: frozenset[str]
    outcome: RunOutcome
    log: logging.LoggerAdapter[logging.Logger]
    saved: bytes | None = None  # the context as last stored

    async def save_context(self, objects: ObjectStore) -> None:
        """Store the context unless it is exactly what was stored last."""
        data = job_context.to_json(self.context)
        if data != self.saved:
            await objects.put(self.context_path, data, content_type="application/json")
            self.saved = data


class Worker:
    """Runs executions from ``queue`` with at most ``concurrency`` in flight."""

    def __init__(
        self,
        *,
        stores: Stores,
        queue: Queue,
        executors: Mapping[str, StepExecutor],
        worker_id: str | None = None,
        concurrency: int = 8,
        lease_seconds: float = LEASE_SECONDS,
        environ: Mapping[str, str] | None = None,
        backoff: Callable[[int], float] = backoff_seconds,
        metrics: Metrics | None = None,
        on_settled: Callable[[str], None] | None = None,
        hand_back: bool = False,
    ) -> None:
        self.stores = stores
        self.queue = queue
        self.executors = executors
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self._environ = environ
        self._backoff = backoff
        self._metrics = metrics
        self._on_settled = on_settled
        #: On a shutdown, put runs in flight back in the queue for another worker (which
        #: resumes them after their finished steps) instead of recording them as
        #: ``interrupted``: what workers on a shared queue do.
        self.hand_back = hand_back
        self._definitions: dict[tuple[str, str], Job] = {}
        self._stored_variables: dict[str, Any] | None = None
        self._variables_read_at = 0.0
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        queue.dead_letter_handler = self.dead_lettered

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and run until ``stop`` is set; then wait for in-flight runs.

        Nothing new starts once ``stop`` is set, not even on a slot that frees then. A
        queue that fails (a server restarting) is asked again after a pause: the loop
        itself never ends on an error.
        """
        while not stop.is_set():
            await self._slots.acquire()
            if stop.is_set():
                self._slots.release()
                break
            try:
                deliveries = await self.queue.fetch(batch=1, timeout_seconds=0.5)
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception as exc:
                self._slots.release()
                log.error("worker: the queue failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=FETCH_RETRY_SECONDS)
                continue
            if not deliveries:
                self._slots.release()
                continue
            if stop.is_set():  # fetched as the shutdown began: back to the queue at once
                for delivery in deliveries:
                    await delivery.nack()
                self._slots.release()
                break
            for delivery in deliveries:
                task = asyncio.create_task(self._process(delivery))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        await self.drain()

    async def drain(self) -> None:
        """Wait for every execution in flight to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def interrupt(self) -> None:
        """Cancel every execution in flight (recorded as interrupted) and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()

    async def _process(self, delivery: Delivery) -> None:
        message = delivery.message
        with log_context(job_id=message.job_id, execution_id=message.execution_id):
            try:
                await self.process(delivery)
            except Exception:
                # Most likely the database went away mid-run. The row may still carry
                # this worker's lease: come back once it has run out, so that the next
                # delivery can claim the run (and resume it) instead of finding it taken.
                log.exception("execution %s failed in the worker", message.execution_id)
                await delivery.nack(delay_seconds=self.lease_seconds)
            finally:
                self._slots.release()
                if self._on_settled is not None:
                    self._on_settled(message.execution_id)

    async def dead_lettered(self, message: QueueMessage, reason: str) -> None:
        """Record an execution whose message went to the dead letter as ``dead_lettered``.

        Only one that nobody runs: the claim fails for a finished execution or one whose
        worker still holds its lease. Its trigger data and context stay as they are, for
        ``vecron retry`` or ``POST /api/v1/executions/{id}/retry``.
        """
        database = self.stores.database
        record = await database.claim_execution(
            message.execution_id,
            worker_id=DEAD_LETTER_WORKER,
            lease_seconds=self.lease_seconds,
            attempt=_attempt(message),  # a message of an earlier attempt: not this one
        )
        if record is None:
            return
        error = f"dead letter: {reason}"
        if record.error:
            error += f" (last error: {record.error})"
        await database.finish_execution(
            record.execution_id,
            worker_id=DEAD_LETTER_WORKER,
            status=ExecutionStatus.DEAD_LETTERED,
            error=error,
            step_statuses=record.step_statuses,
            context_path=record.minio_context_path,
        )
        log.error("execution %s moved to the dead letter: %s", record.execution_id, reason)

    async def process(self, delivery: Delivery) -> None:
        """Run the execution of one delivery and settle the delivery."""
        execution_id = delivery.message.execution_id
        not_before = delivery.message.payload.get(NOT_BEFORE)
        if isinstance(not_before, int | float):
            wait = not_before - time.time()
            if wait > 0.001:
                await delivery.nack(delay_seconds=wait)  # a retry waiting out its backoff
                return
        attempt = _attempt(delivery.message)
        record = await self._claim(delivery, attempt)
        if record is None:
            current = await self.stores.database.get_execution(execution_id)
            if attempt is not None and current.attempt != attempt:
                await delivery.ack()  # a message of an earlier attempt: stale
            elif current.status not in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING):
                await delivery.ack()  # already finished: a duplicate delivery
            else:
                # Another worker holds it: look again once its lease could have run out
                # (a live worker renews it, and acks this message when it is done).
                left = self.lease_seconds
                if current.leased_until is not None:
                    left = (current.leased_until - datetime.now(UTC)).total_seconds()
                await delivery.nack(delay_seconds=min(max(left, 0.0) + 1, self.lease_seconds))
            return
        lost = asyncio.Event()
        running = asyncio.current_task()
        assert running is not None
        heartbeat = asyncio.create_task(self._keep_lease(record, delivery, lost, running))
        try:
            outcome = await self.execute(record, lost=lost)
        except asyncio.CancelledError:
            if not lost.is_set():
                if self.hand_back:
                    await delivery.nack()  # at once: another worker takes it over
                raise
            running.uncancel()  # cancelled by the heartbeat: the lease was lost
            outcome = RunOutcome(status=ExecutionStatus.RUNNING, lost=True)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if outcome.lost:
            # Another worker took the run over (this one's lease ran out): it owns the
            # row and the message now; this worker writes and settles nothing more.
            log.warning("execution %s: lease lost; another worker took it over", execution_id)
            return
        retry = outcome.status in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT)
        job = await self._job_or_none(record)
        if retry and job is not None and record.attempt <= job.max_retries:
            # Not before the breaker of a failing target lets a call through again: a
            # retry during its cool-down would only use up the job's retries.
            delay = max(self._backoff(record.attempt), outcome.retry_after_seconds)
            not_before = datetime.now(UTC) + timedelta(seconds=delay)
            requeued = await self.stores.database.update_execution(
                execution_id,
                claimed_by=self.worker_id,
                status=ExecutionStatus.QUEUED,
                attempt=record.attempt + 1,
                error=outcome.error,
                step_statuses=outcome.step_statuses,
                # A queued retry's lease is its "not before": sweepers leave it alone
                # until then, whatever their queue still remembers.
                leased_until=not_before,
                worker_id=None,
            )
            if not requeued:
                log.warning("execution %s: lease lost before its retry", execution_id)
                return
            log.info("execution %s failed; retry %d in %.0f s", execution_id, record.attempt, delay)
            # Each attempt is a message of its own, so that the deliveries the queue
            # counts toward its dead letter are one attempt's, not the retries'.
            retried = dataclasses.replace(
                record,
                status=ExecutionStatus.QUEUED,
                attempt=record.attempt + 1,
                leased_until=not_before,
            )
            try:
                await enqueue(self.queue, retried)
            except ConnectionError as exc:  # the sweeper enqueues it once the queue is back
                log.warning("retry of %s not enqueued yet: %s", execution_id, exc)
        await delivery.ack()

    async def _claim(self, delivery: Delivery, attempt: int | None) -> ExecutionRecord | None:
        """Claim the delivery's execution. While the database does not answer, the
        delivery is kept (in-progress acks) and the claim tried again with a backoff,
        so that an outage does not use up the message's deliveries."""
        pause = 0.5
        while True:
            try:
                return await self.stores.database.claim_execution(
                    delivery.message.execution_id,
                    worker_id=self.worker_id,
                    lease_seconds=self.lease_seconds,
                    attempt=attempt,
                )
            except ConnectionError as exc:
                log.warning("worker: cannot claim %s yet: %s", delivery.message.execution_id, exc)
            await delivery.in_progress()
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._heartbeat_seconds)

    async def execute(
        self, record: ExecutionRecord, *, lost: asyncio.Event | None = None
    ) -> RunOutcome:
        """Run every step of a claimed execution and record how it ended. ``lost`` is
        set when the lease was lost meanwhile: then nothing more is written."""
        with log_context(
            job_id=record.job_id, job_name=record.job_name, execution_id=record.execution_id
        ):
            return await self._execute(record, lost or asyncio.Event())

    async def _execute(self, record: ExecutionRecord, lost: asyncio.Event) -> RunOutcome:
        started = datetime.now(UTC)
        context_path = paths.context_path(record.job_id, record.execution_id)
        job = await self._job_or_none(record)
        if job is None:
            outcome = RunOutcome(
                status=ExecutionStatus.FAILED,
                error=f"definition version {record.definition_hash} of job "
                f"{record.job_name!r} is missing from the object store",
            )
            await self._finish(record, outcome, None)
            return outcome
        try:
            plain, secret_values, secret_names = await self._variables(job)
        except ConfigurationError as exc:
            outcome = RunOutcome(status=ExecutionStatus.FAILED, error=str(exc))
            await self._finish(record, outcome, None)
            return outcome
        overrides = record.trigger_data.get("variables")
        if record.trigger_source == TriggerSource.MANUAL and isinstance(overrides, Mapping):
            # POST /api/v1/jobs/{name}/runs: values for the job's own variables, this run only.
            plain.update({k: v for k, v in overrides.items() if k in job.variables})
        context = job_context.initial_context(
            job=job, job_id=record.job_id, execution=record, variables=plain, started_at=started
        )
        outcome = RunOutcome(status=ExecutionStatus.SUCCEEDED)
        resumed = await self._resumable(record, context_path)
        if resumed is not None:
            context["steps"] = resumed[0]["steps"]
            outcome.step_statuses = resumed[1]
            log.warning(
                "execution %s resumes after step %s (its worker stopped mid-run)",
                record.execution_id,
                resumed[1][-1]["id"],
            )
        state = _Execution(
            record=record,
            job=job,
            context=context,
            context_path=context_path,
            variables={**plain, **{n: secret_values[n] for n in secret_names}},
            secrets=ChainedSecrets(
                (MappingSecrets(secret_values), EnvironmentSecrets(self._environ))
            ),
            secret_names=secret_names,
            outcome=outcome,
            log=logging.LoggerAdapter(
                log, {"job_id": record.job_id, "execution_id": record.execution_id}
            ),
        )
        try:
            await asyncio.wait_for(self._steps(state), timeout=job.timeout_seconds)
        except TimeoutError:
            outcome.status = ExecutionStatus.TIMED_OUT
            outcome.error = f"the run took longer than timeout_seconds ({job.timeout_seconds} s)"
        except asyncio.CancelledError:
            if lost.is_set():
                raise  # another worker runs it now: its context and row are not ours
            await state.save_context(self.stores.objects)
            if self.hand_back:
                await self.stores.database.update_execution(
                    record.execution_id,
                    claimed_by=self.worker_id,
                    status=ExecutionStatus.QUEUED,
                    worker_id=None,
                    leased_until=None,
                    step_statuses=outcome.step_statuses,
                )
                log.warning(
                    "execution %s handed back to the queue by a shutdown", record.execution_id
                )
                raise
            outcome.status = ExecutionStatus.INTERRUPTED
            outcome.error = "stopped by a shutdown"
            await self._finish(record, outcome, context_path)
            raise
        if outcome.lost:
            return outcome  # found out between steps: another worker runs it now
        await state.save_context(self.stores.objects)  # a no-op after a last step's save
        await self._finish(record, outcome, context_path)
        return outcome

    async def _steps(self, state: _Execution) -> None:
        job, context, outcome = state.job, state.context, state.outcome
        adapter = state.log
        done = {entry["id"] for entry in outcome.step_statuses}
        for index, step in enumerate(job.steps):
            if step.id in done:
                continue  # finished before the worker that ran it stopped
            with log_context(step_id=step.id):
                started = datetime.now(UTC)
                values = ValueResolver(
                    context=context,
                    variables=state.variables,
                    secrets=state.secrets,
                    secret_variables=state.secret_names,
                )
                status, output, error = "succeeded", None, None
                try:
                    if step.when is not None and not _holds(step.when, context):
                        status = "skipped"
                    else:
                        output = await self._run_step(step, state, values)
                except StepFailed as exc:
                    status, output, error = "failed", exc.output, str(exc)
                    if isinstance(exc, CircuitOpen):
                        outcome.retry_after_seconds = exc.retry_after_seconds
                except (ReferenceResolutionError, ConditionEvaluationError) as exc:
                    status, error = "failed", str(exc)
                except TimeoutError:
                    status, error = (
                        "failed",
                        f"the step took longer than timeout_seconds ({step.timeout_seconds} s)",
                    )
                except (asyncio.CancelledError, KeyboardInterrupt):
                    context["steps"][step.id] = job_context.step_entry(
                        step_type=step.type,
                        status="failed",
                        started_at=started,
                        completed_at=datetime.now(UTC),
                        output=None,
                        error="interrupted",
                    )
                    raise
                except Exception as exc:  # an executor bug or an unexpected library error
                    adapter.exception("step %s failed unexpectedly", step.id)
                    status, error = "failed", f"{type(exc).__name__}: {exc}"
                finished = datetime.now(UTC)
                output = job_context.scrub_value(output, values.scrub)
                error = values.scrub(error) if error is not None else None
                register_secrets(values.secrets_used)  # masked in the run's later lines too
                took = (finished - started).total_seconds()
                log.info(
                    "step finished: %s in %.3f s%s",
                    status,
                    took,
                    f": {error}" if error else "",
                    extra={"status": status, "duration_seconds": round(took, 3), "error": error},
                )
                context["steps"][step.id] = job_context.step_entry(
                    step_type=step.type,
                    status=status,
                    started_at=started,
                    completed_at=finished,
                    output=output,
                    error=error,
                )
                outcome.step_statuses.append(
                    {
                        "id": step.id,
                        "status": status,
                        "started_at": started.isoformat(),
                        "completed_at": finished.isoformat(),
                        "error": error,
                        "attempt": state.record.attempt,
                    }
                )
                stop = status == "failed" and not step.continue_on_error
                if stop or index == len(job.steps) - 1:
                    # The execution's summary comes with finish_execution, next.
                    await state.save_context(self.stores.objects)
                else:
                    _, held = await asyncio.gather(
                        state.save_context(self.stores.objects),
                        self.stores.database.update_execution(
                            state.record.execution_id,
                            claimed_by=self.worker_id,
                            step_statuses=list(outcome.step_statuses),
                        ),
                    )
                    if not held:
                        outcome.lost = True
                        return
                if stop:
                    outcome.status = ExecutionStatus.FAILED
                    outcome.error = f"step {step.id!r} failed: {error}"
                    return

    async def _run_step(self, step: Any, state: _Execution, values: ValueResolver) -> Any:
        record = state.record
        executor = self.executors.get(step.type)
        if executor is None:
            raise StepFailed(f"step type {step.type!r} is not available in this worker")
        run = StepRun(
            job_id=record.job_id,
            job_name=state.job.name,
            execution_id=record.execution_id,
            step_id=step.id,
            context=state.context,
            values=values,
            objects=self.stores.objects,
            timeout_seconds=step.timeout_seconds,
            log=state.log,
        )
        if step.timeout_seconds is None:
            return await executor.run(step.config, run)
        return await asyncio.wait_for(executor.run(step.config, run), timeout=step.timeout_seconds)

    async def _resumable(
        self, record: ExecutionRecord, context_path: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The stored context and the finished steps of this attempt, when a worker
        stopped mid-run (killed, or lost its lease): the run goes on after them.

        A step counts as finished only when both the row and ``context.json`` say so;
        a step that was running when the worker stopped runs again.
        """
        finished: list[dict[str, Any]] = []
        for entry in record.step_statuses:  # in run order: keep the finished prefix
            if entry.get("attempt") != record.attempt:
                continue
            if entry.get("status") not in ("succeeded", "skipped"):
                break
            finished.append(dict(entry))
        if not finished:
            return None
        try:
            stored = json.loads(await self.stores.objects.get(context_path))
        except (ObjectNotFound, ValueError):
            return None
        steps = stored.get("steps") if isinstance(stored, dict) else None
        if not isinstance(steps, dict):
            return None
        kept: list[dict[str, Any]] = []
        for entry in finished:
            saved = steps.get(entry["id"])
            if not isinstance(saved, dict) or saved.get("status") != entry["status"]:
                break
            kept.append(entry)
        if not kept:
            return None
        ids = {entry["id"] for entry in kept}
        return {"steps": {k: v for k, v in steps.items() if k in ids}}, kept

    async def _variables(self, job: Job) -> tuple[dict[str, Any], dict[str, str], frozenset[str]]:
        """Plain variables (globals under the job's own), secret values, secret names.

        The global ones are read at most every ``VARIABLES_TTL_SECONDS``: `vecron vars
        set` reaches the next runs within that time, without a query per run.
        """
        now = time.monotonic()
        if self._stored_variables is None or now - self._variables_read_at > VARIABLES_TTL_SECONDS:
            self._stored_variables = await self.stores.database.get_variables(decrypt=True)
            self._variables_read_at = now
        stored = self._stored_variables
        plain: dict[str, Any] = {n: v.value for n, v in stored.items() if not v.secret}
        secrets = {n: v.value for n, v in stored.items() if v.secret}
        plain.update(job.variables)
        for name in job.variables:
            secrets.pop(name, None)
        return plain, secrets, frozenset(secrets)

    async def _job_or_none(self, record: ExecutionRecord) -> Job | None:
        """The definition version of ``record``; versions are immutable, so cached."""
        key = (record.job_id, record.definition_hash)
        if key in self._definitions:
            return self._definitions[key]
        path = paths.definition_version_path(record.job_id, record.definition_hash)
        try:
            data = json.loads(await self.stores.objects.get(path))
        except ObjectNotFound:
            return None
        job = Job.model_validate(data)
        if len(self._definitions) >= DEFINITION_CACHE_SIZE:
            self._definitions.pop(next(iter(self._definitions)))
        self._definitions[key] = job
        return job

    async def _finish(
        self, record: ExecutionRecord, outcome: RunOutcome, context_path: str | None
    ) -> None:
        if self._metrics is not None:
            if outcome.status == ExecutionStatus.SUCCEEDED:
                self._metrics.job_success.labels(record.job_name).inc()
            else:
                self._metrics.job_failed.labels(record.job_name, str(outcome.status)).inc()
            if record.started_at is not None:
                took = (datetime.now(UTC) - record.started_at).total_seconds()
                self._metrics.job_duration.labels(record.job_name).observe(took)
        await self.stores.database.finish_execution(
            record.execution_id,
            worker_id=self.worker_id,
            status=outcome.status,
            error=outcome.error,
            step_statuses=outcome.step_statuses,
            context_path=context_path,
        )

    @property
    def _heartbeat_seconds(self) -> float:
        """Often enough for the lease and for the queue's ack wait, whichever is shorter."""
        return min(self.lease_seconds, self.queue.ack_wait_seconds) / 3

    async def _keep_lease(
        self,
        record: ExecutionRecord,
        delivery: Delivery,
        lost: asyncio.Event,
        running: asyncio.Task[Any],
    ) -> None:
        """Renew the lease and the delivery until cancelled. A renewal that fails (the
        database restarting) is tried again sooner; one that finds the lease taken by
        another worker stops the run at once, so that it never runs twice."""
        pause = self._heartbeat_seconds
        while True:
            await asyncio.sleep(pause)
            with contextlib.suppress(Exception):
                await delivery.in_progress()
            try:
                held = await self.stores.database.renew_lease(
                    record.execution_id, worker_id=self.worker_id, lease_seconds=self.lease_seconds
                )
            except Exception as exc:
                log.warning("execution %s: lease not renewed yet: %s", record.execution_id, exc)
                pause = max(self._heartbeat_seconds / 4, 0.05)
                continue
            pause = self._heartbeat_seconds
            if not held:
                lost.set()
                running.cancel()
                return


def _holds(condition: str, context: Mapping[str, Any]) -> bool:
    parsed = parse_condition(condition, mode="when")

    def lookup(node: Ref | Column) -> Any:
        if isinstance(node, Column):
            raise ConditionEvaluationError(f"{node.name!r}: a `when` condition reads references")
        return resolve(node.reference, context)

    return evaluate(parsed, lookup)


async def enqueue(queue: Queue, record: ExecutionRecord) -> bool:
    """Publish ``record`` for the workers; execution id and attempt deduplicate.

    A queued retry carries its "not before" (its lease) in the message: a worker that
    gets it early hands it back until then.
    """
    payload: dict[str, Any] = {ATTEMPT: record.attempt}
    if record.status == ExecutionStatus.QUEUED and record.leased_until is not None:
        payload[NOT_BEFORE] = record.leased_until.timestamp()
    return await queue.publish(
        QueueMessage(
            message_id=f"{record.execution_id}:{record.attempt}",
            execution_id=record.execution_id,
            job_id=record.job_id,
            payload=payload,
        )
    )


def _attempt(message: QueueMessage) -> int | None:
    attempt = message.payload.get(ATTEMPT)
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None
