# ruff: noqa: F811  (the fixtures of test_worker.py are imported by name and used as parameters)
"""The worker's safety rules around leases and messages: a worker that lost its lease
stops and writes nothing more; a message of an earlier attempt never takes a queued
retry; a failing queue does not stop the fetch loop; nothing new starts after a stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.runtime.test_worker import Runtime, executors, runtime, target  # noqa: F401
from vecron.backends.database import ExecutionStatus
from vecron.backends.queue import Delivery, MemoryQueue
from vecron.runtime.worker import Worker, enqueue

SLOW = """\
name: slow
allow_concurrent: true
steps:
  - {{id: first, type: http, config: {{url: "${{API}}/status/200"}}}}
  - {{id: wait, type: http, config: {{url: "${{API}}/slow?seconds={seconds}"}}}}
  - {{id: last, type: http, config: {{url: "${{API}}/raw?body=x"}}}}
"""


async def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(runtime: Runtime) -> None:
    await runtime.sync({"jobs/slow.yaml": SLOW.format(seconds=2)})
    worker = Worker(
        stores=runtime.stores,
        queue=runtime.queue,
        executors=runtime.worker.executors,
        lease_seconds=0.6,
    )
    execution_id = await runtime.trigger("slow")
    (delivery,) = await runtime.queue.fetch(timeout_seconds=1)
    processing = asyncio.create_task(worker.process(delivery))
    database = runtime.stores.database
    while not (await database.get_execution(execution_id)).step_statuses:
        await asyncio.sleep(0.05)  # the first step is done, the slow one runs
    # Another worker takes the run over (as after a lease that ran out).
    await database.update_execution(
        execution_id, worker_id="the-other", leased_until=datetime.now(UTC) + timedelta(hours=1)
    )
    await asyncio.wait_for(processing, timeout=10)
    record = await database.get_execution(execution_id)
    assert record.worker_id == "the-other"
    assert record.status == ExecutionStatus.RUNNING  # not finished by the loser
    assert [s["id"] for s in record.step_statuses] == ["first"]
    assert await runtime.queue.pending() == 1  # its message is the other worker's now


async def test_a_message_of_an_earlier_attempt_does_not_take_the_retry(runtime: Runtime) -> None:
    await runtime.sync({"jobs/slow.yaml": SLOW.format(seconds=0)})
    execution_id = await runtime.trigger("slow")
    (stale,) = await runtime.queue.fetch(timeout_seconds=1)
    # Meanwhile attempt 1 ran and failed: the row waits for its retry, attempt 2.
    not_before = datetime.now(UTC) + timedelta(minutes=5)
    await runtime.stores.database.update_execution(
        execution_id, status=ExecutionStatus.QUEUED, attempt=2, leased_until=not_before
    )
    await runtime.worker.process(stale)
    record = await runtime.stores.database.get_execution(execution_id)
    assert record.status == ExecutionStatus.QUEUED
    assert record.attempt == 2
    assert record.worker_id is None
    assert await runtime.queue.pending() == 0  # the stale message is gone
    # Nor does it dead-letter the retry.
    await runtime.worker.dead_lettered(stale.message, "delivered 5 times")
    assert (await runtime.stores.database.get_execution(execution_id)).status == (
        ExecutionStatus.QUEUED
    )


class _FailsOnce(MemoryQueue):
    """The in-process queue, failing its first fetch as a restarting server would."""

    failed = False

    async def fetch(self, *, batch: int = 1, timeout_seconds: float = 1.0) -> list[Delivery]:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the queue restarts")
        return await super().fetch(batch=batch, timeout_seconds=timeout_seconds)


async def test_a_failing_queue_does_not_stop_the_worker(runtime: Runtime) -> None:
    await runtime.sync({"jobs/slow.yaml": SLOW.format(seconds=0)})
    queue = _FailsOnce()
    worker = Worker(stores=runtime.stores, queue=queue, executors=runtime.worker.executors)
    record = await runtime.stores.database.get_execution(await runtime.trigger("slow"))
    await enqueue(queue, record)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    database = runtime.stores.database
    for _ in range(200):
        if (await database.get_execution(record.execution_id)).status == "succeeded":
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert queue.failed
    assert (await database.get_execution(record.execution_id)).status == "succeeded"


async def test_nothing_new_starts_once_the_worker_is_stopping(runtime: Runtime) -> None:
    await runtime.sync({"jobs/slow.yaml": SLOW.format(seconds=1)})
    queue = MemoryQueue()
    worker = Worker(
        stores=runtime.stores, queue=queue, executors=runtime.worker.executors, concurrency=1
    )
    database = runtime.stores.database
    first = await database.get_execution(await runtime.trigger("slow"))
    await enqueue(queue, first)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    while (await database.get_execution(first.execution_id)).status != "running":
        await asyncio.sleep(0.02)
    # The one slot is taken; a second run waits in the queue as the stop comes.
    second = await database.get_execution(await runtime.trigger("slow"))
    await enqueue(queue, second)
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, timeout=20)
    assert (await database.get_execution(first.execution_id)).status == "succeeded"
    assert (await database.get_execution(second.execution_id)).status == "queued"
    assert await queue.pending() == 1  # left for the next worker
