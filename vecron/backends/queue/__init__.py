"""The queue role: :class:`Queue` (``base.py``) and its implementations."""

from __future__ import annotations

from vecron.backends.queue.base import Delivery, Queue, QueueMessage
from vecron.backends.queue.memory import MemoryQueue
from vecron.errors import ConfigurationError

__all__ = ["Delivery", "MemoryQueue", "Queue", "QueueMessage", "open_queue"]


def open_queue(url: str) -> Queue:
    """The queue for ``url``: ``memory://`` (in-process) or ``nats://host:port[?stream=…]``
    (NATS JetStream, loaded only then). Nothing is contacted until the first use."""
    if url.startswith("memory:"):
        return MemoryQueue()
    if url.startswith(("nats:", "tls:")):
        from vecron.backends.queue.nats import NatsQueue

        return NatsQueue.from_url(url)
    raise ConfigurationError(
        f"unsupported queue URL {url.split('://', maxsplit=1)[0]}:// "
        "(use memory:// or nats://HOST:PORT)"
    )
