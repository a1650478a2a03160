"""The queue role: executions waiting for a worker.

Modelled on a JetStream work queue, so that the in-process queue and NATS behave
alike: a message is delivered to one consumer at a time; the consumer acks it when the
execution is recorded, or it comes back after ``ack_wait_seconds`` (a worker that died
mid-run); a long run sends in-progress acks to keep it; after ``max_deliver``
deliveries it goes to the dead letter instead. Publishing is idempotent by message id
within a duplicate window, as JetStream's ``Nats-Msg-Id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMessage:
    """One execution to run. ``message_id`` deduplicates publishes (the execution id,
    or ``job_id:fire_time`` for a scheduled fire)."""

    message_id: str
    execution_id: str
    job_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Delivery(Protocol):
    """One delivery of a message to a consumer; settle it exactly once.

    ``ack`` removes the message for good; ``nack`` hands it back for redelivery after
    ``delay_seconds``; ``term`` drops it without redelivery (it goes to the dead letter);
    ``in_progress`` restarts the ack timer of a long run. Settling twice is a no-op.
    """

    message: QueueMessage
    delivery_count: int

    async def ack(self) -> None: ...

    async def nack(self, *, delay_seconds: float = 0) -> None: ...

    async def term(self, *, reason: str) -> None: ...

    async def in_progress(self) -> None: ...


@runtime_checkable
class Queue(Protocol):
    """A work queue of executions.

    Guarantees every implementation gives (tests/backends/test_queue.py checks them):

    - ``publish`` returns False and enqueues nothing when a message with the same id
      was published within ``duplicate_window_seconds``.
    - A message is delivered to at most one consumer at a time, in publish order
      (redeliveries may come later than newer messages).
    - An unsettled delivery is redelivered after ``ack_wait_seconds`` unless
      ``in_progress`` was called within that time. A late ack from the earlier delivery
      may still remove the message (JetStream acks by stream sequence): what runs an
      execution once is the claim on its database row, not the ack.
    - A message delivered ``max_deliver`` times without an ack is not delivered again;
      it is kept, with its last reason, in the dead letter (``dead_letters``).
    - ``fetch`` waits up to ``timeout_seconds`` for at least one message and returns at
      most ``batch``; it returns an empty list on timeout, never raises for it.
    """

    ack_wait_seconds: float
    max_deliver: int
    #: Awaited with the message and the reason before a message goes to the dead
    #: letter (``max_deliver`` reached, or ``term``); if it raises, the message stays
    #: in the queue and is tried again after ``ack_wait_seconds``. The worker sets it
    #: to record the execution as ``dead_lettered``.
    dead_letter_handler: Callable[[QueueMessage, str], Awaitable[None]] | None

    async def publish(self, message: QueueMessage) -> bool: ...

    async def fetch(self, *, batch: int = 1, timeout_seconds: float = 1.0) -> list[Delivery]: ...

    async def pending(self) -> int:
        """Messages waiting or being worked on (not acked, not dead)."""
        ...

    async def dead_letters(self) -> list[tuple[QueueMessage, str]]: ...

    async def close(self) -> None: ...

    def describe(self) -> str: ...
