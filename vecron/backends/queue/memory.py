"""The in-process queue: the embedded twin of the NATS JetStream queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vecron.backends.queue.base import Delivery, QueueMessage

log = logging.getLogger("vecron.queue")


@dataclass(slots=True)
class _Entry:
    message: QueueMessage
    deliveries: int = 0
    deadline: float = 0.0  # when an unsettled delivery comes back
    available_at: float = 0.0  # for a nack with a delay
    token: int = 0  # which delivery may settle it


@dataclass(slots=True, eq=False)
class MemoryDelivery:
    queue: MemoryQueue
    entry: _Entry
    token: int
    message: QueueMessage = field(init=False)
    delivery_count: int = field(init=False)

    def __post_init__(self) -> None:
        self.message = self.entry.message
        self.delivery_count = self.entry.deliveries

    async def ack(self) -> None:
        self.queue._settle(self, None)

    async def nack(self, *, delay_seconds: float = 0) -> None:
        self.queue._settle(self, delay_seconds)

    async def term(self, *, reason: str) -> None:
        entry = self.queue._terminate(self)
        if entry is not None:
            await self.queue._dead_letter(entry, reason)

    async def in_progress(self) -> None:
        if self.entry.token == self.token and self.message.message_id in self.queue._inflight:
            self.entry.deadline = self.queue._clock() + self.queue.ack_wait_seconds


class MemoryQueue:
    """A work queue inside one process, with the semantics of :class:`Queue`."""

    def __init__(
        self,
        *,
        ack_wait_seconds: float = 60.0,
        max_deliver: int = 5,
        duplicate_window_seconds: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ack_wait_seconds = ack_wait_seconds
        self.max_deliver = max_deliver
        self.duplicate_window_seconds = duplicate_window_seconds
        self._clock = clock
        self._ready: deque[_Entry] = deque()
        self._inflight: dict[str, _Entry] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._dead_letters: list[tuple[QueueMessage, str]] = []
        self._wakeup = asyncio.Condition()
        self._tokens = 0
        self.dead_letter_handler: Callable[[QueueMessage, str], Awaitable[None]] | None = None

    def describe(self) -> str:
        return "memory://"

    async def publish(self, message: QueueMessage) -> bool:
        now = self._clock()
        while (
            self._recent and next(iter(self._recent.values())) < now - self.duplicate_window_seconds
        ):
            self._recent.popitem(last=False)
        if message.message_id in self._recent:
            return False
        self._recent[message.message_id] = now
        self._ready.append(_Entry(message=message))
        async with self._wakeup:
            self._wakeup.notify_all()
        return True

    async def fetch(self, *, batch: int = 1, timeout_seconds: float = 1.0) -> list[Delivery]:
        deadline = self._clock() + timeout_seconds
        while True:
            taken, dead = self._take(batch)
            for entry in dead:
                await self._dead_letter(entry, f"delivered {entry.deliveries} times")
            if taken:
                return taken
            remaining = deadline - self._clock()
            if remaining <= 0:
                return []
            async with self._wakeup:
                # Wake up for a publish, or soon enough to see an expired ack deadline.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=min(remaining, 0.05))

    def _take(self, batch: int) -> tuple[list[Delivery], list[_Entry]]:
        now = self._clock()
        for message_id, entry in list(self._inflight.items()):
            if entry.deadline <= now:  # the consumer went away: deliver it again
                del self._inflight[message_id]
                entry.token = 0
                self._ready.appendleft(entry)
        taken: list[Delivery] = []
        skipped: list[_Entry] = []
        dead: list[_Entry] = []
        while self._ready and len(taken) < batch:
            entry = self._ready.popleft()
            if entry.available_at > now:
                skipped.append(entry)
                continue
            if entry.deliveries >= self.max_deliver:
                dead.append(entry)
                continue
            entry.deliveries += 1
            self._tokens += 1
            entry.token = self._tokens
            entry.deadline = now + self.ack_wait_seconds
            self._inflight[entry.message.message_id] = entry
            taken.append(MemoryDelivery(self, entry, entry.token))
        self._ready.extendleft(reversed(skipped))
        return taken, dead

    def _settle(self, delivery: MemoryDelivery, redeliver_after: float | None) -> None:
        entry = delivery.entry
        if (
            entry.token != delivery.token
            or self._inflight.get(entry.message.message_id) is not entry
        ):
            return  # settled already, or taken back after its ack deadline
        del self._inflight[entry.message.message_id]
        entry.token = 0
        if redeliver_after is not None:
            entry.available_at = self._clock() + redeliver_after
            self._ready.append(entry)

    def _terminate(self, delivery: MemoryDelivery) -> _Entry | None:
        entry = delivery.entry
        if (
            entry.token != delivery.token
            or self._inflight.get(entry.message.message_id) is not entry
        ):
            return None
        del self._inflight[entry.message.message_id]
        entry.token = 0
        return entry

    async def _dead_letter(self, entry: _Entry, reason: str) -> None:
        """Tell the handler, then keep the message; if the handler fails, try later."""
        if self.dead_letter_handler is not None:
            try:
                await self.dead_letter_handler(entry.message, reason)
            except Exception:
                log.exception("queue: dead letter of %s not recorded", entry.message.execution_id)
                entry.available_at = self._clock() + self.ack_wait_seconds
                self._ready.append(entry)
                return
        self._dead_letters.append((entry.message, reason))

    async def pending(self) -> int:
        return len(self._ready) + len(self._inflight)

    async def dead_letters(self) -> list[tuple[QueueMessage, str]]:
        return list(self._dead_letters)

    async def close(self) -> None:
        self._ready.clear()
        self._inflight.clear()
