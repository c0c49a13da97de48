"""Prometheus metrics for one worker, fed from the plain counters of the hot path.

The node, the broker and the connection handler count with plain ints. prometheus-client is
never called per message or per delivery: in multiprocess mode every update writes to an
mmap'd file. Instead, ``WorkerMetrics.sync`` adds the counters' deltas to the Prometheus
counters about once a second, and again right before a scrape is answered. The two
histograms are observed per fan-out batch and per Redis round-trip sample (one per pipelined
write), which is cheap at that rate.

With several workers, the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of
its own before spawning them, so each worker writes its values to files there and any worker
can answer ``/metrics`` and ``/stats`` for all of them. A single worker without that
variable keeps its values in memory.

Every series carries a ``worker`` label (the worker's index, stable across restarts). No
label is ever a channel name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector

from hub import __version__
from hub.core.config import METRICS_DIR_ENV

__all__ = [
    "SYNC_INTERVAL_S",
    "Figures",
    "WorkerMetrics",
    "multiprocess_dir",
]

logger = logging.getLogger(__name__)

#: The variable prometheus-client reads, at import, to switch to multiprocess mode.
#: How often the plain counters are copied into the Prometheus metrics.
SYNC_INTERVAL_S = 1.0

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


# Figures field → (metric name without _total, help). The order is the exposition's.
_COUNTERS: dict[str, tuple[str, str]] = {
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
_GAUGES: dict[str, tuple[str, str]] = {
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

#: Histograms whose buckets /stats carries, by the name /stats gives them.
_STATS_HISTOGRAMS = {
    "hub_fanout_duration_seconds": "fanout_s",
    "hub_broker_roundtrip_seconds": "redis_roundtrip_s",
    "hub_probe_latency_seconds": "probe_latency_s",
}
#: The process collector's gauges, exported per worker.
_PROCESS_GAUGES: dict[str, str] = {
    "process_resident_memory_bytes": "resident memory of the worker process, in bytes",
    "process_virtual_memory_bytes": "virtual memory of the worker process, in bytes",
    "process_open_fds": "open file descriptors of the worker process (sockets included)",
    "process_max_fds": "the worker's open-file limit: the most sockets it can hold",
    "process_start_time_seconds": "when the worker process started, in seconds since the epoch",
}
#: Figures fields counted as dropped messages, by reason label.
_DROPS: dict[str, str] = {
    "dropped_publish_buffer_full": "publish_buffer_full",
    "dropped_rate_limited": "rate_limited",
}

# Sample name → /stats key, for the per-worker figures.
_STATS_KEYS: dict[str, str] = {
    **{name: key for key, (name, _) in _GAUGES.items()},
    **{name + "_total": key for key, (name, _) in _COUNTERS.items()},
    "hub_messages_dropped_total": "dropped",
}


class WorkerMetrics:
    """One worker's Prometheus metrics, synced from ``read()`` by ``run`` and before scrapes."""

    def __init__(self, *, worker: int, read: Callable[[], Figures], broker: str = "memory") -> None:
        self.worker = worker
        self.read = read
        #: Where the broker is, for /stats (no password: see ``redact_url``).
        self.broker = broker
        self.multiprocess_dir = multiprocess_dir()
        self.started_at = time.time()
        # _created samples do not exist in multiprocess mode; leave them out of both modes.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        # A private registry: several Apps in one process (tests) must not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        label = str(worker)
        self._counters: list[tuple[str, Any]] = []
        for key, (name, doc) in _COUNTERS.items():
            metric = Counter(name, doc, ["worker"], registry=self.registry)
            self._counters.append((key, metric.labels(label)))
        dropped = Counter(
            "hub_messages_dropped",
            "messages the hub dropped, by reason (publish_buffer_full: the bounded buffer "
            "for Redis was full; rate_limited: over a connection's --publish-rate)",
            ["worker", "reason"],
            registry=self.registry,
        )
        for key, reason in _DROPS.items():
            self._counters.append((key, dropped.labels(label, reason)))
        self._gauges: list[tuple[str, Any]] = []
        for key, (name, doc) in _GAUGES.items():
            # livesum: a dead worker's files are dropped by the supervisor (mark_process_dead),
            # and a restarted worker's value is its own, under the same worker label.
            gauge = Gauge(
                name, doc, ["worker"], registry=self.registry, multiprocess_mode="livesum"
            )
            self._gauges.append((key, gauge.labels(label)))
        self._last: dict[str, int] = {key: 0 for key, _ in self._counters}
        self.fanout_duration = Histogram(
            "hub_fanout_duration_seconds",
            "time to fan one batch of broker messages out to local subscribers",
            ["worker"],
            buckets=FANOUT_BUCKETS_S,
            registry=self.registry,
        ).labels(label)
        self.broker_roundtrip = Histogram(
            "hub_broker_roundtrip_seconds",
            "time from writing a batch of PUBLISH commands to the first one's reply",
            ["worker"],
            buckets=ROUNDTRIP_BUCKETS_S,
            registry=self.registry,
        ).labels(label)
        # The process collector's series, per worker: multiprocess mode drops the default
        # collectors, and dashboards and alerts (open fds / max fds) need them.
        self._process = ProcessCollector(registry=None)
        self._process_gauges = {
            name: Gauge(
                name, doc, ["worker"], registry=self.registry, multiprocess_mode="livesum"
            ).labels(label)
            for name, doc in _PROCESS_GAUGES.items()
        }
        self._process_cpu = Counter(
            "process_cpu_seconds",
            "user and system CPU time of the worker process, in seconds",
            ["worker"],
            registry=self.registry,
        ).labels(label)
        self._last_cpu_s = 0.0
        self.probe_latency = Histogram(
            "hub_probe_latency_seconds",
            "end to end through Redis: from this worker's probe PUBLISH to its arrival on the "
            "worker's own subscription, once per probe interval",
            ["worker"],
            buckets=ROUNDTRIP_BUCKETS_S,
            registry=self.registry,
        ).labels(label)
        self.observe_probe_latency: Callable[[float], None] = self.probe_latency.observe
        # Backend hooks, by hook: series appear only for the hooks a worker calls.
        self._hook_calls = Counter(
            "hub_hook_calls",
            "calls to the backend's hooks (--proxy-*-url), by hook",
            ["worker", "hook"],
            registry=self.registry,
        )
        self._hook_errors = Counter(
            "hub_hook_errors",
            "hook calls that failed (backend down, past --proxy-timeout-s, a 5xx, a bad "
            "answer), by hook; a refusal is no error",
            ["worker", "hook"],
            registry=self.registry,
        )
        self._hook_duration = Histogram(
            "hub_hook_duration_seconds",
            "time of one call to a backend hook, by hook",
            ["worker", "hook"],
            buckets=HOOK_BUCKETS_S,
            registry=self.registry,
        )
        self._hook_last: dict[tuple[str, str], int] = {}
        #: Hooks for Node(on_fanout=...) and RedisBroker(on_roundtrip=...).
        self.observe_fanout: Callable[[float], None] = self.fanout_duration.observe
        self.observe_roundtrip: Callable[[float], None] = self.broker_roundtrip.observe

    def observe_hook_latency(self, hook: str, seconds: float) -> None:
        """For HookProxy(on_latency=...): once per hook call."""
        self._hook_duration.labels(str(self.worker), hook).observe(seconds)

    # Syncing

    def sync(self) -> None:
        """Copy the plain counters into the Prometheus metrics (deltas for counters)."""
        figures = self.read()
        last = self._last
        for key, counter in self._counters:
            value: int = getattr(figures, key)
            delta = value - last[key]
            if delta > 0:
                counter.inc(delta)
            last[key] = value
        for key, gauge in self._gauges:
            gauge.set(float(getattr(figures, key)))
        for kind, metric, pairs in (
            ("calls", self._hook_calls, figures.hook_calls),
            ("errors", self._hook_errors, figures.hook_errors),
        ):
            for hook, value in pairs:
                delta = value - self._hook_last.get((kind, hook), 0)
                if delta > 0:
                    metric.labels(str(self.worker), hook).inc(delta)
                self._hook_last[(kind, hook)] = value
        self._sync_process()

    def _sync_process(self) -> None:
        """This worker's memory, CPU, file descriptors and start time, from /proc."""
        for family in self._process.collect():
            for sample in family.samples:
                gauge = self._process_gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)
                elif sample.name == "process_cpu_seconds_total":
                    if sample.value > self._last_cpu_s:
                        self._process_cpu.inc(sample.value - self._last_cpu_s)
                        self._last_cpu_s = sample.value

    async def run(self, interval_s: float = SYNC_INTERVAL_S) -> None:
        """Sync every ``interval_s`` until cancelled; an error is logged, never fatal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.sync()
            except Exception:
                logger.exception("syncing the metrics failed; retrying in %.1fs", interval_s)

    # Reading

    def _exposition_registry(self) -> CollectorRegistry:
        if self.multiprocess_dir is None:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return registry

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition covering every worker, and its content type."""
        self.sync()
        body = prometheus_client.generate_latest(self._exposition_registry())
        return body, prometheus_client.CONTENT_TYPE_LATEST

    def stats(self) -> dict[str, Any]:
        """Aggregated and per-worker figures for the dashboard, from the same metrics."""
        self.sync()
        workers: dict[str, dict[str, float]] = {}
        buckets: dict[str, dict[float, float]] = {name: {} for name in _STATS_HISTOGRAMS.values()}
        for family in self._exposition_registry().collect():
            for sample in family.samples:
                histogram = _STATS_HISTOGRAMS.get(sample.name.removesuffix("_bucket"))
                if histogram is not None and sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    cumulative = buckets[histogram]
                    cumulative[le] = cumulative.get(le, 0.0) + sample.value
                    continue
                key = _STATS_KEYS.get(sample.name)
                worker = sample.labels.get("worker")
                if key is None or worker is None:
                    continue
                figures = workers.setdefault(worker, {})
                figures[key] = figures.get(key, 0.0) + sample.value
        per_worker = []
        for worker in sorted(workers, key=lambda w: int(w) if w.isdigit() else -1):
            figures = workers[worker]
            row: dict[str, Any] = {"worker": worker}
            row.update({k: int(figures.get(k, 0)) for k in _STATS_KEYS.values()})
            # A worker with no live gauges is dead (or restarting): its totals still count.
            row["alive"] = "broker_ready" in figures
            row["broker_ready"] = figures.get("broker_ready", 0.0) > 0
            per_worker.append(row)
        totals: dict[str, Any] = {
            k: sum(row[k] for row in per_worker)
            for k in _STATS_KEYS.values()
            if k != "broker_ready"
        }
        totals["workers"] = sum(1 for row in per_worker if row["alive"])
        totals["workers_ready"] = sum(1 for row in per_worker if row["broker_ready"])
        return {
            "time": time.time(),
            "answered_by": {"worker": self.worker, "pid": os.getpid()},
            "uptime_s": round(time.time() - self.started_at, 3),
            "multiprocess": self.multiprocess_dir is not None,
            "broker": self.broker,
            "version": __version__,
            # Cumulative bucket counts over every worker, [upper bound, count] ascending: the
            # dashboard takes the difference of two polls for the quantiles of that interval.
            "histograms": {
                name: [[le, cumulative[le]] for le in sorted(cumulative)]
                for name, cumulative in buckets.items()
            },
            "totals": totals,
            "workers": per_worker,
        }
