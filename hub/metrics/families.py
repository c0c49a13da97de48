"""The Prometheus metrics of one worker: their names, help and buckets, as tables, and the
``Families`` that registers them, each under the worker's label."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "COUNTERS",
    "FANOUT_BUCKETS_S",
    "GAUGES",
    "HOOK_BUCKETS_S",
    "ROUNDTRIP_BUCKETS_S",
    "Families",
]

#: A fan-out batch takes microseconds for a few subscribers, milliseconds for thousands.
FANOUT_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
#: A Redis PUBLISH round-trip: sub-millisecond on loopback, more across a network or a
#: busy server.
ROUNDTRIP_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


# Figures field → (metric name without _total, help). The order is the exposition's.
COUNTERS: dict[str, tuple[str, str]] = {
    "connections_opened": (
        "hub_ws_connections_opened",
        "WebSocket connections accepted",
    ),
    "received": (
        "hub_messages_received",
        "messages received from WebSocket clients",
    ),
    "published": (
        "hub_messages_published",
        "messages the broker accepted (Redis answered the PUBLISH)",
    ),
    "delivered": (
        "hub_messages_delivered",
        "messages written to local subscribers (one per message per subscriber)",
    ),
    "slow_consumer_disconnects": (
        "hub_ws_slow_consumer_disconnects",
        "clients closed with 4008 because their unsent bytes passed the limit",
    ),
    "broker_reconnects": (
        "hub_broker_reconnects",
        "lost broker connections (publisher or subscriber) that were reconnected",
    ),
    "broker_publish_errors": (
        "hub_broker_publish_errors",
        "PUBLISH commands the broker answered with an error",
    ),
    "broker_gaps": (
        "hub_broker_gaps",
        "subscriber reconnects: windows in which this worker missed messages",
    ),
    "broker_probe_failures": (
        "hub_broker_probe_failures",
        "probes that did not come back through pub/sub in time (the worker was deaf)",
    ),
    "history_repaired": (
        "hub_history_repaired",
        "history channels' messages that pub/sub missed and the history gave back",
    ),
    "history_gaps": (
        "hub_history_gaps",
        "losses on history channels that could not be repaired (each sent as a gap frame)",
    ),
    "history_forged": (
        "hub_history_forged",
        "deliveries on history channels with an offset the history never assigned, dropped",
    ),
    "sse_streams_opened": (
        "hub_sse_streams_opened",
        "Server-Sent Events streams started (GET /sse/<channel>)",
    ),
}
GAUGES: dict[str, tuple[str, str]] = {
    "connections": ("hub_ws_connections", "open WebSocket connections"),
    "subscriptions": ("hub_ws_subscriptions", "(connection, channel) subscriptions"),
    "channels": (
        "hub_channels_active",
        "channels with local subscribers (a channel counts once per worker that has it)",
    ),
    "broker_ready": (
        "hub_broker_ready",
        "1 when the broker is connected, subscribed and not deaf, else 0",
    ),
    "sse_streams": ("hub_sse_streams", "open Server-Sent Events streams"),
}
#: A backend hook's call: milliseconds on a LAN, up to --proxy-timeout-s.
HOOK_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: The process collector's gauges, exported per worker.
PROCESS_GAUGES: dict[str, str] = {
    "process_resident_memory_bytes": "resident memory of the worker process, in bytes",
    "process_virtual_memory_bytes": "virtual memory of the worker process, in bytes",
    "process_open_fds": "open file descriptors of the worker process (sockets included)",
    "process_max_fds": "the worker's open-file limit: the most sockets it can hold",
    "process_start_time_seconds": "when the worker process started, in seconds since the epoch",
}
#: Figures fields counted as dropped messages, by reason label.
DROPS: dict[str, str] = {
    "dropped_publish_buffer_full": "publish_buffer_full",
    "dropped_rate_limited": "rate_limited",
}


class Families:
    """Every metric of one worker, registered on ``registry``, in the exposition's order:
    the children labelled with ``worker`` for the plain ones, the families for those that
    also carry a hook."""

    def __init__(self, registry: CollectorRegistry, worker: int) -> None:
        label = str(worker)
        #: (Figures field, counter) and (Figures field, gauge), synced from the figures.
        self.counters: list[tuple[str, Any]] = []
        for key, (name, doc) in COUNTERS.items():
            metric = Counter(name, doc, ["worker"], registry=registry)
            self.counters.append((key, metric.labels(label)))
        dropped = Counter(
            "hub_messages_dropped",
            "messages the hub dropped, by reason (publish_buffer_full: the bounded buffer "
            "for Redis was full; rate_limited: over a connection's --publish-rate)",
            ["worker", "reason"],
            registry=registry,
        )
        for key, reason in DROPS.items():
            self.counters.append((key, dropped.labels(label, reason)))
        self.gauges: list[tuple[str, Any]] = []
        for key, (name, doc) in GAUGES.items():
            # livesum: a dead worker's files are dropped by the supervisor (mark_process_dead),
            # and a restarted worker's value is its own, under the same worker label.
            gauge = Gauge(name, doc, ["worker"], registry=registry, multiprocess_mode="livesum")
            self.gauges.append((key, gauge.labels(label)))
        self.fanout_duration = _histogram(
            registry,
            "hub_fanout_duration_seconds",
            "time to fan one batch of broker messages out to local subscribers",
            FANOUT_BUCKETS_S,
        ).labels(label)
        self.broker_roundtrip = _histogram(
            registry,
            "hub_broker_roundtrip_seconds",
            "time from writing a batch of PUBLISH commands to the first one's reply",
            ROUNDTRIP_BUCKETS_S,
        ).labels(label)
        # The process collector's series, per worker: multiprocess mode drops the default
        # collectors, and dashboards and alerts (open fds / max fds) need them.
        self.process_gauges = {
            name: Gauge(
                name, doc, ["worker"], registry=registry, multiprocess_mode="livesum"
            ).labels(label)
            for name, doc in PROCESS_GAUGES.items()
        }
        self.process_cpu = Counter(
            "process_cpu_seconds",
            "user and system CPU time of the worker process, in seconds",
            ["worker"],
            registry=registry,
        ).labels(label)
        self.probe_latency = _histogram(
            registry,
            "hub_probe_latency_seconds",
            "end to end through Redis: from this worker's probe PUBLISH to its arrival on the "
            "worker's own subscription, once per probe interval",
            ROUNDTRIP_BUCKETS_S,
        ).labels(label)
        # Backend hooks, by hook: series appear only for the hooks a worker calls.
        self.hook_calls = Counter(
            "hub_hook_calls",
            "calls to the backend's hooks (--proxy-*-url), by hook",
            ["worker", "hook"],
            registry=registry,
        )
        self.hook_errors = Counter(
            "hub_hook_errors",
            "hook calls that failed (backend down, past --proxy-timeout-s, a 5xx, a bad "
            "answer), by hook; a refusal is no error",
            ["worker", "hook"],
            registry=registry,
        )
        self.hook_duration = Histogram(
            "hub_hook_duration_seconds",
            "time of one call to a backend hook, by hook",
            ["worker", "hook"],
            buckets=HOOK_BUCKETS_S,
            registry=registry,
        )


def _histogram(
    registry: CollectorRegistry, name: str, doc: str, buckets: tuple[float, ...]
) -> Histogram:
    """A histogram labelled by worker only."""
    return Histogram(name, doc, ["worker"], buckets=buckets, registry=registry)
