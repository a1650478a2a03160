"""The queue contract, against every implementation: in-process and NATS JetStream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from vecron.backends.queue import MemoryQueue, Queue, QueueMessage, open_queue
from vecron.backends.queue.nats import NatsQueue
from vecron.errors import BackendUnavailable, ConfigurationError


def message(n: int) -> QueueMessage:
    return QueueMessage(message_id=f"m{n}", execution_id=f"e{n}", job_id="j", payload={"n": n})


@pytest.fixture(params=["memory", "nats"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[Queue]:
    if request.param == "memory":
        opened: Queue = MemoryQueue(
            ack_wait_seconds=0.3, max_deliver=3, duplicate_window_seconds=60
        )
        try:
            yield opened
        finally:
            await opened.close()
        return
    nats_url: str = request.getfixturevalue("nats_url")
    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    nats_queue = NatsQueue.from_url(
        f"{nats_url}?stream={stream}&ack_wait=0.3&max_deliver=3&duplicate_window=60"
    )
    try:
        yield nats_queue
    finally:
        await nats_queue.delete_streams()
        await nats_queue.close()


async def test_publish_fetch_ack_in_order(queue: Queue) -> None:
    for n in range(5):
        assert await queue.publish(message(n))
    assert await queue.pending() == 5
    first = await queue.fetch(batch=3, timeout_seconds=1)
    assert [d.message.execution_id for d in first] == ["e0", "e1", "e2"]
    assert all(d.delivery_count == 1 for d in first)
    assert first[0].message.payload == {"n": 0}
    for delivery in first:
        await delivery.ack()
    rest = await queue.fetch(batch=10, timeout_seconds=1)
    assert [d.message.execution_id for d in rest] == ["e3", "e4"]
    for delivery in rest:
        await delivery.ack()
    assert await queue.pending() == 0
    assert await queue.fetch(timeout_seconds=0.1) == []


async def test_duplicates_are_dropped(queue: Queue) -> None:
    assert await queue.publish(message(1))
    assert not await queue.publish(message(1))
    (delivery,) = await queue.fetch(batch=5, timeout_seconds=1)
    await delivery.ack()
    assert not await queue.publish(message(1))  # still within the window
    assert await queue.fetch(timeout_seconds=0.1) == []


async def test_one_consumer_at_a_time(queue: Queue) -> None:
    await queue.publish(message(1))
    # Well inside the ack wait (0.3 s), even where one process's pulls take turns.
    results = await asyncio.gather(*(queue.fetch(timeout_seconds=0.04) for _ in range(5)))
    assert sum(len(r) for r in results) == 1


async def test_an_unsettled_delivery_comes_back_after_the_ack_wait(queue: Queue) -> None:
    await queue.publish(message(1))
    (first,) = await queue.fetch(timeout_seconds=1)
    assert await queue.fetch(timeout_seconds=0.1) == []
    (again,) = await queue.fetch(timeout_seconds=2)
    assert again.message == first.message
    assert again.delivery_count == 2
    await again.ack()
    await first.ack()  # late and stale: harmless
    assert await queue.pending() == 0
    assert await queue.fetch(timeout_seconds=0.1) == []


async def test_in_progress_keeps_a_long_run(queue: Queue) -> None:
    await queue.publish(message(1))
    (delivery,) = await queue.fetch(timeout_seconds=1)
    for _ in range(4):
        await asyncio.sleep(0.15)
        await delivery.in_progress()
        assert await queue.fetch(timeout_seconds=0.01) == []
    await delivery.ack()
    assert await queue.pending() == 0


async def test_nack_redelivers_after_a_delay(queue: Queue) -> None:
    await queue.publish(message(1))
    (delivery,) = await queue.fetch(timeout_seconds=1)
    await delivery.nack(delay_seconds=0.2)
    assert await queue.fetch(timeout_seconds=0.05) == []
    (again,) = await queue.fetch(timeout_seconds=1)
    assert again.delivery_count == 2
    await again.ack()


async def test_exhausted_deliveries_go_to_the_dead_letter(queue: Queue) -> None:
    await queue.publish(message(1))
    for expected in range(1, 4):
        (delivery,) = await queue.fetch(timeout_seconds=1)
        assert delivery.delivery_count == expected
        await delivery.nack()
    assert await queue.fetch(timeout_seconds=0.1) == []
    assert [(m.execution_id, why) for m, why in await queue.dead_letters()] == [
        ("e1", "delivered 3 times")
    ]
    await queue.publish(message(2))
    (delivery,) = await queue.fetch(timeout_seconds=1)
    await delivery.term(reason="job deleted")
    assert ("e2", "job deleted") in [(m.execution_id, why) for m, why in await queue.dead_letters()]
    assert await queue.pending() == 0


async def test_fetch_wakes_up_on_publish(queue: Queue) -> None:
    waiting = asyncio.create_task(queue.fetch(timeout_seconds=5))
    await asyncio.sleep(0.05)
    await queue.publish(message(1))
    (delivery,) = await asyncio.wait_for(waiting, timeout=1)
    assert delivery.message.execution_id == "e1"


async def test_the_dead_letter_handler_hears_of_every_dead_letter(queue: Queue) -> None:
    heard: list[tuple[str, str]] = []

    async def handler(message: QueueMessage, reason: str) -> None:
        heard.append((message.execution_id, reason))

    queue.dead_letter_handler = handler
    await queue.publish(message(1))
    for _ in range(3):
        (delivery,) = await queue.fetch(timeout_seconds=1)
        await delivery.nack()
    assert await queue.fetch(timeout_seconds=0.1) == []
    await queue.publish(message(2))
    (delivery,) = await queue.fetch(timeout_seconds=1)
    await delivery.term(reason="stop")
    assert heard == [("e1", "delivered 3 times"), ("e2", "stop")]


async def test_a_failing_dead_letter_handler_keeps_the_message(queue: Queue) -> None:
    calls: list[str] = []

    async def handler(message: QueueMessage, reason: str) -> None:
        calls.append(message.execution_id)
        if len(calls) == 1:
            raise ConnectionError("database down")

    queue.dead_letter_handler = handler
    await queue.publish(message(1))
    (delivery,) = await queue.fetch(timeout_seconds=1)
    await delivery.term(reason="stop")
    assert await queue.dead_letters() == []
    assert await queue.pending() == 1  # still here, tried again after the ack wait
    deadline = asyncio.get_running_loop().time() + 5
    while len(calls) < 2 and asyncio.get_running_loop().time() < deadline:
        await queue.fetch(timeout_seconds=0.2)
    assert calls == ["e1", "e1"]
    assert [m.execution_id for m, _ in await queue.dead_letters()] == ["e1"]
    assert await queue.pending() == 0


def test_open_queue() -> None:
    assert isinstance(open_queue("memory://"), MemoryQueue)
    assert isinstance(open_queue("nats://127.0.0.1:4222?stream=X"), NatsQueue)
    with pytest.raises(ConfigurationError, match="unknown option 'acks'"):
        open_queue("nats://127.0.0.1:4222?acks=1")
    with pytest.raises(ConfigurationError, match="unsupported queue URL"):
        open_queue("amqp://guest:guest@localhost/")


async def test_nats_down_at_start_is_an_error_not_a_hang() -> None:
    queue = NatsQueue.from_url("nats://127.0.0.1:9?stream=DOWN")  # nothing listens there
    try:
        with pytest.raises(BackendUnavailable, match=r"nats://127\.0\.0\.1:9"):
            await asyncio.wait_for(queue.publish(message(1)), timeout=20)
    finally:
        await queue.close()


async def test_a_message_that_is_not_an_execution_is_dead_lettered(nats_url: str) -> None:
    import nats

    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    queue = NatsQueue.from_url(f"{nats_url}?stream={stream}&ack_wait=0.5")
    try:
        await queue.publish(message(1))
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().publish(queue.options.work_subject("x"), b"not json")
        finally:
            await client.close()
        await queue.publish(message(2))
        got = []
        for _ in range(3):
            for delivery in await queue.fetch(batch=5, timeout_seconds=0.5):
                got.append(delivery.message.execution_id)
                await delivery.ack()
        assert got == ["e1", "e2"]  # the bad one never reaches a worker
        assert await queue.pending() == 0
    finally:
        await queue.delete_streams()
        await queue.close()
