"""One worker's figures: the plain counters and levels the metrics are fed from."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hub.core.config import METRICS_DIR_ENV

__all__ = ["SYNC_INTERVAL_S", "Figures", "multiprocess_dir"]

#: How often the plain counters are copied into the Prometheus metrics.
SYNC_INTERVAL_S = 1.0


def multiprocess_dir() -> str | None:
    """The directory of the multiprocess metric files, or None for in-memory metrics."""
    return os.environ.get(METRICS_DIR_ENV) or None


@dataclass(frozen=True, slots=True)
class Figures:
    """One worker's counters and levels, read from plain attributes in one go."""

    # Levels (gauges)
    connections: int = 0
    subscriptions: int = 0
    channels: int = 0
    broker_ready: bool = False
    sse_streams: int = 0
    # Totals since the worker started (counters)
    connections_opened: int = 0
    received: int = 0
    published: int = 0
    delivered: int = 0
    dropped_publish_buffer_full: int = 0
    dropped_rate_limited: int = 0
    slow_consumer_disconnects: int = 0
    broker_reconnects: int = 0
    broker_publish_errors: int = 0
    broker_gaps: int = 0
    broker_probe_failures: int = 0
    history_repaired: int = 0
    history_gaps: int = 0
    history_forged: int = 0
    sse_streams_opened: int = 0
    #: Backend hooks: (hook, calls) and (hook, failures), for the configured hooks only.
    hook_calls: tuple[tuple[str, int], ...] = ()
    hook_errors: tuple[tuple[str, int], ...] = ()
