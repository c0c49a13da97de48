"""The fan-out: one batch of a channel's messages to every local subscriber, synchronously.

Per batch, each wire format's bytes are built once (lazily, only if a subscriber uses that
format) and each subscriber gets ONE write for the whole batch. The per-message-per-socket
``send()`` system call is the dominant cost of a broadcast, so coalescing what already waits
is the lever; nothing here awaits, queues or re-encodes per subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol, TypeVar

from hub.core.envelope import Envelope
from hub.core.formats import ENCODERS, PER_CONNECTION, Encoder

__all__ = ["Subscriber", "deliver"]

logger = logging.getLogger(__name__)


class Subscriber(Protocol):
    """What the fan-out needs of a connection."""

    #: Which wire format this client reads (``hub.core.formats``), or PER_CONNECTION.
    format: int

    def send_batch(self, data: bytes) -> int:
        """Queue ``data`` (the batch, pre-encoded in this subscriber's format) for writing.

        Return the bytes now buffered and unsent, or -1 when the subscriber is closed and was
        skipped.
        """
        ...

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        """Encode and queue a batch itself (format PER_CONNECTION); return as send_batch."""
        ...


S = TypeVar("S", bound=Subscriber)


def deliver(
    subscribers: Iterable[S],
    channel: str,
    messages: list[Envelope],
    max_buffered_bytes: int,
    slow: list[S],
    encoders: tuple[Encoder, ...] = ENCODERS,
) -> int:
    """Write ``messages`` to each subscriber; return the number of messages delivered.

    Subscribers whose unsent bytes pass ``max_buffered_bytes`` are appended to ``slow``; the
    caller applies the slow-consumer policy after the loop, so no one waits on them.
    """
    encoded: list[bytes | None] = [None] * len(encoders)
    num_sent = 0
    for sub in subscribers:
        fmt = sub.format
        try:
            if fmt == PER_CONNECTION:
                buffered = sub.send_messages(channel, messages)
            else:
                data = encoded[fmt]
                if data is None:
                    data = encoded[fmt] = encoders[fmt](channel, messages)
                buffered = sub.send_batch(data)
        except Exception:
            # One broken connection must not cost the rest of the channel its delivery.
            logger.exception("writing to a subscriber of %s failed; skipping it", channel)
            continue
        if buffered < 0:
            continue
        num_sent += 1
        if buffered > max_buffered_bytes:
            slow.append(sub)
    return num_sent * len(messages)
