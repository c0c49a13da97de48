"""What a Redis or Redis Cluster broker is told to run with (the memory broker needs none)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BrokerOptions"]


@dataclass(frozen=True)
class BrokerOptions:
    """``hub.brokers.create_engines``'s options, passed through to the engines."""

    #: Before every Redis name of a channel (pub/sub, history, presence).
    prefix: str = "hub:"
    #: The bounds of what the process holds unanswered (while Redis is away, or slow).
    publish_buffer_messages: int = 10_000
    publish_buffer_bytes: int = 16 * 1024 * 1024
    #: The bound of the presence queue, apart from the publish buffer's: clients (per
    #: channel) whose presence write waits for Redis. A storm past it drops writes, and the
    #: node writes those channels' members again at its next heartbeat.
    presence_buffer_entries: int = 100_000
    #: How often the probe goes round this process's publish → Redis → subscribe path, and
    #: after how long without it coming back the process calls itself deaf.
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 3.0
    #: This process's name in Redis (connection names, presence, the probe's channel); None:
    #: ``hub-<pid>-<random>``.
    name: str | None = None
    #: Given each publish batch's round-trip, and each probe's latency, in seconds.
    on_roundtrip: Callable[[float], None] | None = None
    on_probe_latency: Callable[[float], None] | None = None
