"""The NATS JetStream queue: a work-queue stream and one durable pull consumer.

Executions are published to ``{prefix}.executions.{job_id}`` with ``Nats-Msg-Id`` set
to the message id, so that the stream's duplicate window drops a repeat. Every worker
process pulls from the same durable consumer (explicit acks, ``ack_wait``), so each
message is with one worker at a time and comes back when that worker dies. The
consumer itself redelivers without limit: this module counts deliveries and moves a
message past ``max_deliver`` to the dead-letter stream ``{stream}_DLQ`` (subject
``{prefix}.dead.{job_id}``, the reason in a header), telling the
``dead_letter_handler`` first, so that the execution's status says so too.

URL: ``nats://[user:password@]host:port[?stream=VECRON&ack_wait=60&max_deliver=5&
duplicate_window=120]``; the subject prefix is the stream name in lower case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from vecron.backends.queue.base import Delivery, QueueMessage
from vecron.errors import BackendUnavailable, ConfigurationError

log = logging.getLogger("vecron.queue")

DEFAULT_STREAM = "VECRON"
MSG_ID_HEADER = "Nats-Msg-Id"
REASON_HEADER = "Vecron-Dead-Letter-Reason"
#: Seconds a publish or a management request may take before the server counts as down.
REQUEST_TIMEOUT_SECONDS = 5.0

DeadLetterHandler = Callable[[QueueMessage, str], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NatsQueueOptions:
    servers: str
    stream: str = DEFAULT_STREAM
    ack_wait_seconds: float = 60.0
    max_deliver: int = 5
    duplicate_window_seconds: float = 120.0

    @property
    def prefix(self) -> str:
        return self.stream.lower()

    @property
    def dead_stream(self) -> str:
        return f"{self.stream}_DLQ"

    @property
    def consumer(self) -> str:
        return f"{self.stream}_workers"

    def work_subject(self, job_id: str = "*") -> str:
        return f"{self.prefix}.executions.{job_id}"

    def dead_subject(self, job_id: str = "*") -> str:
        return f"{self.prefix}.dead.{job_id}"

    @classmethod
    def from_url(cls, url: str) -> NatsQueueOptions:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"stream", "ack_wait", "max_deliver", "duplicate_window"}
        unknown = sorted(set(query) - known)
        if unknown:
            listed = ", ".join(sorted(known))
            raise ConfigurationError(
                f"unknown option {unknown[0]!r} in the queue URL (known: {listed})"
            )
        servers = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        try:
            return cls(
                servers=servers,
                stream=query.get("stream", DEFAULT_STREAM),
                ack_wait_seconds=float(query.get("ack_wait", 60)),
                max_deliver=int(query.get("max_deliver", 5)),
                duplicate_window_seconds=float(query.get("duplicate_window", 120)),
            )
        except ValueError as exc:
            raise ConfigurationError(f"the queue URL has a malformed number: {exc}") from None


@dataclass(slots=True, eq=False)
class NatsDelivery:
    queue: NatsQueue
    msg: Msg
    message: QueueMessage
    delivery_count: int
    settled: bool = field(default=False)

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            await _settle(self.msg.ack_sync())

    async def nack(self, *, delay_seconds: float = 0) -> None:
        if not self.settled:
            self.settled = True
            await _settle(self.msg.nak(delay=delay_seconds or None))

    async def term(self, *, reason: str) -> None:
        if not self.settled:
            self.settled = True
            await self.queue._dead_letter(self.msg, self.message, reason)

    async def in_progress(self) -> None:
        if not self.settled:
            await _settle(self.msg.in_progress())


async def _settle(acking: Awaitable[object]) -> None:
    """Send an ack; a connection lost meanwhile only means a redelivery later."""
    try:
        await acking
    except (nats.errors.Error, OSError) as exc:
        log.warning("queue: an ack was not sent (%s); the message will be redelivered", exc)


class NatsQueue:
    """A work queue on a NATS JetStream server, with the semantics of :class:`Queue`.

    It connects on first use (and reconnects on its own after a server restart);
    streams and the consumer are created when missing, so a new server needs no setup.
    """

    def __init__(self, options: NatsQueueOptions) -> None:
        self.options = options
        self.ack_wait_seconds = options.ack_wait_seconds
        self.max_deliver = options.max_deliver
        self.dead_letter_handler: DeadLetterHandler | None = None
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._connecting = asyncio.Lock()
        self._fetching = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> NatsQueue:
        return cls(NatsQueueOptions.from_url(url))

    def describe(self) -> str:
        host = urlsplit(self.options.servers).hostname
        port = urlsplit(self.options.servers).port or 4222
        return f"nats://{host}:{port} (stream {self.options.stream})"

    async def _jetstream(self) -> JetStreamContext:
        if self._js is not None:
            return self._js
        async with self._connecting:
            if self._js is None:
                try:
                    # Reconnects go on for ever once connected; the first connection
                    # must not (nats-py retries it without end too), or a role started
                    # while NATS is down would hang instead of reporting it.
                    client = await asyncio.wait_for(
                        nats.connect(
                            self.options.servers,
                            connect_timeout=REQUEST_TIMEOUT_SECONDS,
                            max_reconnect_attempts=-1,
                            reconnect_time_wait=0.5,
                            allow_reconnect=True,
                            error_cb=_log_error,
                            name="vecron",
                        ),
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    raise BackendUnavailable(f"{self.describe()}: {exc or 'no answer'}") from None
                js = client.jetstream(timeout=REQUEST_TIMEOUT_SECONDS)
                try:
                    await self._declare(js)
                except BaseException:
                    await client.close()
                    raise
                self._client, self._js = client, js
        assert self._js is not None
        return self._js

    async def _declare(self, js: JetStreamContext) -> None:
        options = self.options
        streams = (
            StreamConfig(
                name=options.stream,
                subjects=[options.work_subject()],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=options.duplicate_window_seconds,
            ),
            StreamConfig(
                name=options.dead_stream,
                subjects=[options.dead_subject()],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
            ),
        )
        try:
            for config in streams:
                try:
                    await js.stream_info(config.name or "")
                except nats.js.errors.NotFoundError:
                    await js.add_stream(config)
            self._subscription = await js.pull_subscribe(
                options.work_subject(),
                durable=options.consumer,
                stream=options.stream,
                config=ConsumerConfig(
                    durable_name=options.consumer,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=options.ack_wait_seconds,
                    max_deliver=-1,  # counted here, to move the message to the dead letter
                    max_ack_pending=-1,
                    max_waiting=4096,
                ),
            )
        except (nats.errors.Error, OSError) as exc:
            raise BackendUnavailable(f"{self.describe()}: {exc}") from None

    async def publish(self, message: QueueMessage) -> bool:
        js = await self._jetstream()
        data = orjson.dumps(
            {
                "message_id": message.message_id,
                "execution_id": message.execution_id,
                "job_id": message.job_id,
                "payload": dict(message.payload),
            }
        )
        try:
            ack = await js.publish(
                self.options.work_subject(message.job_id),
                data,
                headers={MSG_ID_HEADER: message.message_id},
            )
        except (nats.errors.Error, OSError) as exc:
            raise BackendUnavailable(f"{self.describe()}: publish failed: {exc}") from None
        return not ack.duplicate

    async def fetch(self, *, batch: int = 1, timeout_seconds: float = 1.0) -> list[Delivery]:
        await self._jetstream()
        subscription = self._subscription
        assert subscription is not None
        async with self._fetching:  # one pull at a time on the shared subscription
            try:
                msgs = await subscription.fetch(batch, timeout=max(timeout_seconds, 0.001))
            except (nats.errors.TimeoutError, TimeoutError):
                return []
            except (nats.errors.Error, OSError) as exc:
                # Reconnecting: let the caller try again rather than spin.
                log.warning("queue: fetch failed: %s", exc)
                await asyncio.sleep(min(timeout_seconds, 0.5))
                return []
        deliveries: list[Delivery] = []
        for msg in msgs:
            try:
                message = _decode(msg)
            except (ValueError, KeyError, TypeError) as exc:
                await self._malformed(msg, exc)
                continue
            count = msg.metadata.num_delivered
            if count > self.max_deliver:
                await self._dead_letter(msg, message, f"delivered {count - 1} times")
                continue
            deliveries.append(
                NatsDelivery(queue=self, msg=msg, message=message, delivery_count=count)
            )
        return deliveries

    async def _dead_letter(self, msg: Msg, message: QueueMessage, reason: str) -> None:
        """Tell the handler, keep the message in the dead-letter stream, then drop it."""
        if self.dead_letter_handler is not None:
            try:
                await self.dead_letter_handler(message, reason)
            except Exception as exc:
                log.error("queue: dead letter of %s not recorded: %s", message.execution_id, exc)
                await _settle(msg.nak(delay=self.ack_wait_seconds))
                return
        js = await self._jetstream()
        try:
            await js.publish(
                self.options.dead_subject(message.job_id),
                msg.data,
                headers={MSG_ID_HEADER: f"dead:{message.message_id}", REASON_HEADER: reason},
            )
        except (nats.errors.Error, OSError) as exc:
            log.error("queue: dead letter of %s not stored: %s", message.execution_id, exc)
            await _settle(msg.nak(delay=1))
            return
        await _settle(msg.ack_sync())

    async def _malformed(self, msg: Msg, exc: Exception) -> None:
        """A message that is not an execution (published by hand, another program):
        kept in the dead-letter stream as it came, never given to a worker."""
        log.error(
            "queue: a message on %s is not an execution (%s): dead-lettered", msg.subject, exc
        )
        js = await self._jetstream()
        reason = f"malformed: {type(exc).__name__}"
        try:
            await js.publish(
                self.options.dead_subject("malformed"), msg.data, headers={REASON_HEADER: reason}
            )
        except (nats.errors.Error, OSError):
            await _settle(msg.nak(delay=self.ack_wait_seconds))
            return
        await _settle(msg.ack_sync())

    async def pending(self) -> int:
        js = await self._jetstream()
        try:
            info = await js.stream_info(self.options.stream)
        except (nats.errors.Error, OSError) as exc:
            raise BackendUnavailable(f"{self.describe()}: {exc}") from None
        return int(info.state.messages)

    async def dead_letters(self) -> list[tuple[QueueMessage, str]]:
        js = await self._jetstream()
        info = await js.stream_info(self.options.dead_stream)
        letters: list[tuple[QueueMessage, str]] = []
        if not info.state.messages:
            return letters
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            with contextlib.suppress(nats.js.errors.NotFoundError, ValueError, KeyError):
                stored = await js.get_msg(self.options.dead_stream, sequence)
                headers = stored.headers or {}
                message = _decode_data(stored.data or b"")
                letters.append((message, headers.get(REASON_HEADER, "")))
        return letters

    async def purge(self) -> None:
        """Drop every message and dead letter (tests and ``vecron`` tooling)."""
        js = await self._jetstream()
        for stream in (self.options.stream, self.options.dead_stream):
            await js.purge_stream(stream)

    async def delete_streams(self) -> None:
        """Remove both streams and the consumer (a test's clean-up)."""
        js = await self._jetstream()
        for stream in (self.options.stream, self.options.dead_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)

    async def close(self) -> None:
        client, self._client, self._js, self._subscription = self._client, None, None, None
        if client is not None:
            # Not drain(): every delivery is settled by then, and draining a pull
            # subscription whose consumer is gone waits out its full timeout.
            with contextlib.suppress(nats.errors.Error, OSError):
                await client.close()


def _decode(msg: Msg) -> QueueMessage:
    return _decode_data(msg.data)


def _decode_data(data: bytes) -> QueueMessage:
    fields: dict[str, Any] = orjson.loads(data)
    return QueueMessage(
        message_id=str(fields["message_id"]),
        execution_id=str(fields["execution_id"]),
        job_id=str(fields["job_id"]),
        payload=fields.get("payload") or {},
    )


async def _log_error(exc: Exception) -> None:
    log.warning("queue: NATS: %s", exc)
