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

What Prometheus must not carry (channel names) and what it does not keep (the last minutes),
each worker keeps itself for ``/stats``: once a second it takes a ``Sample`` of its figures
into a bounded ring (``HISTORY_S`` of them), and the rate of each of its busiest channels
over that second. With several workers it writes both to its own small file in the same
directory (``hub-stats-<worker>.json``, replaced whole each second), and the worker that
answers ``/stats`` merges every live worker's file with its own figures: subscribers summed
per channel, the channel's rate the highest any worker saw (every worker subscribed to a
channel receives all of its messages), and the history summed second by second.

Every series carries a ``worker`` label (the worker's index, stable across restarts). No
label is ever a channel name.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import math
import os
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hub import __version__
from hub.core.config import METRICS_DIR_ENV

__all__ = [
    "HISTORY_S",
    "STATS_CHANNELS",
    "SYNC_INTERVAL_S",
    "Figures",
    "Sample",
    "WorkerMetrics",
    "merge_history",
    "multiprocess_dir",
]

logger = logging.getLogger(__name__)

#: The variable prometheus-client reads, at import, to switch to multiprocess mode.
#: How often the plain counters are copied into the Prometheus metrics.
SYNC_INTERVAL_S = 1.0
#: How far back /stats' history reaches, in seconds (one sample per SYNC_INTERVAL_S).
HISTORY_S = 300
#: The busiest channels /stats lists, over every worker.
STATS_CHANNELS = 50
#: The busiest channels each worker shares with the others (a few times what is listed, so
#: that a channel's subscribers are summed over every worker that has it).
SHARED_CHANNELS = 4 * STATS_CHANNELS
#: A worker's own stats file in the multiprocess directory.
STATS_FILE = "hub-stats-{worker}.json"
#: A stats file not rewritten for this long is a dead worker's: its channels are left out.
STALE_S = 3 * SYNC_INTERVAL_S
#: How often, at most, the answering worker asks Redis for its memory, clients and channels.
REDIS_REFRESH_S = 5.0

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


@dataclass(frozen=True, slots=True)
class Sample:
    """One worker's figures at one moment, for /stats' history: levels, and totals since the
    worker started (rates are the differences of two samples)."""

    t: float
    connections: int
    received: int
    delivered: int
    slow_consumer_disconnects: int
    #: Fan-out batches so far, per bucket of FANOUT_BUCKETS_S (and one over the last).
    fanout: tuple[int, ...]

    def to_json(self) -> list[Any]:
        return [
            round(self.t, 3),
            self.connections,
            self.received,
            self.delivered,
            self.slow_consumer_disconnects,
            list(self.fanout),
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> Sample:
        t, connections, received, delivered, slow, fanout = row
        return cls(t, connections, received, delivered, slow, tuple(fanout))


def _upper_quantile(counts: list[int], q: float) -> float | None:
    """The upper bound of the fan-out bucket holding quantile ``q`` of ``counts`` (per
    bucket); the last finite bound for the overflow bucket; None for no batches."""
    total = sum(counts)
    if total <= 0:
        return None
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= q * total:
            return FANOUT_BUCKETS_S[min(i, len(FANOUT_BUCKETS_S) - 1)]
    return FANOUT_BUCKETS_S[-1]


def merge_history(
    rings: Iterable[Iterable[Sample]], *, since: float, until: float
) -> dict[str, Any]:
    """The hub's last minutes, second by second, from each worker's ring of samples.

    Each pair of consecutive samples of one worker gives its rates over that interval; they
    count for every whole second the interval ends or spans (a worker that sampled late,
    or skipped a second, still counts in each), and the worker's level (connections) at the
    interval's end likewise. Counts (slow-consumer closes, fan-out batches) count once, in
    the second the interval ends. The workers' figures are summed per second; the fan-out
    p99 comes from the summed buckets. Seconds after ``until`` (the newest second every
    live worker has sampled) are left out, so the last point never lacks a worker.
    """
    first, last = math.floor(since) + 1, math.floor(until)
    levels: dict[int, list[float]] = {}
    fanout: dict[int, list[int]] = {}
    for ring in rings:
        previous: Sample | None = None
        for sample in ring:
            if previous is not None:
                begin, end = math.floor(previous.t) + 1, math.floor(sample.t)
                dt = sample.t - previous.t
                if end < begin or dt < SYNC_INTERVAL_S / 2:
                    continue  # samples too close for a rate: the next one covers both
                received = max(0, sample.received - previous.received) / dt
                delivered = max(0, sample.delivered - previous.delivered) / dt
                for key in range(max(begin, first), min(end, last) + 1):
                    point = levels.setdefault(key, [0.0, 0.0, 0.0, 0.0])
                    point[0] += sample.connections
                    point[1] += received
                    point[2] += delivered
                if first <= end <= last:
                    point = levels.setdefault(end, [0.0, 0.0, 0.0, 0.0])
                    point[3] += max(
                        0, sample.slow_consumer_disconnects - previous.slow_consumer_disconnects
                    )
                    buckets = fanout.setdefault(end, [0] * len(sample.fanout))
                    for i, (n, m) in enumerate(zip(sample.fanout, previous.fanout, strict=True)):
                        buckets[i] += max(0, n - m)
            previous = sample
    keys = sorted(levels)
    return {
        "interval_s": SYNC_INTERVAL_S,
        "t": keys,
        "connections": [int(levels[k][0]) for k in keys],
        "received_per_s": [round(levels[k][1], 2) for k in keys],
        "delivered_per_s": [round(levels[k][2], 2) for k in keys],
        "slow_consumer_closes": [int(levels[k][3]) for k in keys],
        "fanout_p99_s": [_upper_quantile(fanout.get(k, []), 0.99) for k in keys],
    }


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

    def __init__(
        self,
        *,
        worker: int,
        read: Callable[[], Figures],
        broker: str = "memory",
        channels: Callable[[], Iterable[tuple[str, int]]] | None = None,
        take_channel_messages: Callable[[], Mapping[str, int]] | None = None,
        redis_info: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        """``read`` gives the worker's figures; ``channels`` its (channel, local subscribers)
        and ``take_channel_messages`` the messages per channel since its last call, for the
        channels' rates; ``redis_info`` asks Redis for its memory, clients and channels (see
        ``App``), and is None with the memory broker."""
        self.worker = worker
        self.read = read
        self._channels = channels or (lambda: ())
        self._take_channel_messages = take_channel_messages or dict
        self._redis_info = redis_info
        self._redis: dict[str, Any] | None = None
        self._redis_at = 0.0
        self._redis_task: asyncio.Task[None] | None = None
        #: The last minutes of this worker's figures, one sample a second.
        self.history: deque[Sample] = deque(maxlen=int(HISTORY_S / SYNC_INTERVAL_S) + 1)
        #: Messages per second of each channel with local subscribers, over the last sample.
        self.channel_rates: dict[str, float] = {}
        self._figures = Figures()
        self._fanout_counts = [0] * (len(FANOUT_BUCKETS_S) + 1)
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
        self._sampled_at = self.started_at
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
        self.observe_fanout: Callable[[float], None] = self._observe_fanout
        self.observe_roundtrip: Callable[[float], None] = self.broker_roundtrip.observe

    def _observe_fanout(self, seconds: float) -> None:
        self.fanout_duration.observe(seconds)
        # The same buckets, counted here too: the history's p99 per second needs them.
        self._fanout_counts[bisect.bisect_left(FANOUT_BUCKETS_S, seconds)] += 1

    def observe_hook_latency(self, hook: str, seconds: float) -> None:
        """For HookProxy(on_latency=...): once per hook call."""
        self._hook_duration.labels(str(self.worker), hook).observe(seconds)

    # Syncing

    def sync(self) -> None:
        """Copy the plain counters into the Prometheus metrics (deltas for counters)."""
        figures = self._figures = self.read()
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
        """Sync and sample every ``interval_s`` until cancelled; an error is logged, never
        fatal. The samples fall on the clock's whole intervals, so that every worker's
        samples line up, second by second."""
        while True:
            delay = interval_s - time.time() % interval_s
            if time.time() + delay - self._sampled_at < interval_s / 2:
                delay += interval_s  # woken just before a whole second: not two samples in it
            await asyncio.sleep(delay)
            try:
                self.sync()
                self.sample()
            except Exception:
                logger.exception("syncing the metrics failed; retrying in %.1fs", interval_s)

    def sample(self) -> None:
        """Take a sample of the figures of the last sync into the history, and the rates of
        the channels since the last sample; with several workers, write them for the others."""
        now = time.time()
        figures = self._figures
        elapsed = now - self._sampled_at
        messages = self._take_channel_messages()
        self.channel_rates = (
            {channel: n / elapsed for channel, n in messages.items()} if elapsed > 0 else {}
        )
        self._sampled_at = now
        self.history.append(
            Sample(
                now,
                figures.connections,
                figures.received,
                figures.delivered,
                figures.slow_consumer_disconnects,
                tuple(self._fanout_counts),
            )
        )
        if self.multiprocess_dir is not None:
            path = Path(self.multiprocess_dir) / STATS_FILE.format(worker=self.worker)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_bytes(orjson.dumps(self._shared(now)))
            os.replace(partial, path)  # whole, for a reader in another worker

    def _shared(self, now: float) -> dict[str, Any]:
        """What this worker tells the others: its busiest channels and its history."""
        rates = self.channel_rates
        busiest = heapq.nlargest(
            SHARED_CHANNELS,
            ((rates.get(channel, 0.0), n, channel) for channel, n in self._channels()),
        )
        return {
            "worker": str(self.worker),
            "pid": os.getpid(),
            "time": now,
            "num_channels": self._figures.channels,
            "channels": [[channel, n, round(rate, 2)] for rate, n, channel in busiest],
            "history": [sample.to_json() for sample in self.history],
        }

    def _read_shared(self) -> list[dict[str, Any]]:
        """The other workers' files (without their samples decoded)."""
        if self.multiprocess_dir is None:
            return []
        own = STATS_FILE.format(worker=self.worker)
        docs = []
        for path in Path(self.multiprocess_dir).glob(STATS_FILE.format(worker="*")):
            if path.name == own:
                continue
            try:
                docs.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue  # gone meanwhile: a worker that stopped
        return docs

    # Redis

    def _refresh_redis(self) -> None:
        """Ask Redis again in the background if the last answer is old: /stats answers at
        once with the last one (the dashboard polls every second)."""
        if self._redis_info is None or time.monotonic() - self._redis_at < REDIS_REFRESH_S:
            return
        if self._redis_task is not None and not self._redis_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside the event loop (a test): nothing to run it on
        self._redis_at = time.monotonic()
        self._redis_task = loop.create_task(self._ask_redis(self._redis_info))

    async def _ask_redis(self, ask: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        try:
            answer = await asyncio.wait_for(ask(), REDIS_REFRESH_S)
        except Exception as exc:
            logger.debug("asking Redis for /stats failed", exc_info=True)
            self._redis = {"error": f"{type(exc).__name__}: {exc}"[:200], "at": time.time()}
        else:
            self._redis = {**answer, "at": time.time()}

    def _redis_stats(self) -> tuple[dict[str, Any] | None, Mapping[str, int]]:
        """The last answer of Redis, for /stats, and its processes per channel."""
        self._refresh_redis()
        if self._redis_info is None:
            return None, {}
        if self._redis is None:
            return {"pending": True}, {}
        answer = dict(self._redis)
        processes: Mapping[str, int] = answer.pop("channel_processes", {})
        answer["age_s"] = round(time.time() - answer.pop("at"), 1)
        return answer, processes

    # Reading

    def _exposition_registry(self) -> CollectorRegistry:
        if self.multiprocess_dir is None:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return registry

    def _collect(self) -> list[Any]:
        """Every metric family of every worker. A worker creating a metric file leaves it
        empty for an instant, and prometheus-client fails to read it (struct.error): read
        again then."""
        for _ in range(_COLLECT_ATTEMPTS - 1):
            try:
                return list(self._exposition_registry().collect())
            except struct.error:
                time.sleep(0.005)
        return list(self._exposition_registry().collect())

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition covering every worker, and its content type."""
        self.sync()
        families = self._collect()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collected(families))
        body = prometheus_client.generate_latest(registry)
        return body, prometheus_client.CONTENT_TYPE_LATEST

    def stats(self) -> dict[str, Any]:
        """Aggregated and per-worker figures for the dashboard, from the same metrics; the
        busiest channels and the history of every live worker (their stats files, merged
        with this worker's own figures); and Redis' last answer (docs/metrics.md)."""
        self.sync()
        workers: dict[str, dict[str, float]] = {}
        buckets: dict[str, dict[float, float]] = {name: {} for name in _STATS_HISTOGRAMS.values()}
        for family in self._collect():
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
        now = time.time()
        alive = {row["worker"] for row in per_worker if row["alive"]}
        own = self._shared(now)
        others = self._read_shared()
        # A dead worker's channels go at once (its gauges are gone); its history stays.
        live = [own] + [d for d in others if d["worker"] in alive and now - d["time"] <= STALE_S]
        redis, processes = self._redis_stats()
        channels, num_channels, complete = _merge_channels(live, processes)
        totals["channels"] = num_channels
        samples = [self.history] + [
            [Sample.from_json(row) for row in d["history"]]
            for d in others
            if now - d["time"] <= HISTORY_S
        ]
        ends = [d["history"][-1][0] for d in live if d["history"]]
        return {
            "time": now,
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
            "channels": channels,
            "num_channels": num_channels,
            "channels_complete": complete,
            "history": merge_history(
                samples, since=now - HISTORY_S, until=min(ends) if ends else now
            ),
            "redis": redis,
        }


#: Reads of the multiprocess files, at most, before a failure is an error.
_COLLECT_ATTEMPTS = 3


class _Collected(Collector):
    """Families already collected, for generate_latest."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterable[Any]:
        return self.families


def _merge_channels(
    docs: list[dict[str, Any]], processes: Mapping[str, int]
) -> tuple[list[dict[str, Any]], int, bool]:
    """The busiest channels over the workers' ``docs``: subscribers summed, the rate the
    highest any worker saw; how many distinct channels; and whether that is exact (no worker
    had more channels than it shares, so none was left out)."""
    merged: dict[str, list[float]] = {}
    for doc in docs:
        for channel, n, rate in doc["channels"]:
            row = merged.get(channel)
            if row is None:
                merged[channel] = [n, rate, 1]
            else:
                row[0] += n
                row[1] = max(row[1], rate)
                row[2] += 1
    complete = all(d["num_channels"] <= len(d["channels"]) for d in docs)
    distinct = len(merged) if complete else max([len(merged)] + [d["num_channels"] for d in docs])
    busiest = sorted(merged.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    rows = [
        {
            "channel": channel,
            "subscribers": int(n),
            "messages_per_s": round(rate, 1),
            "workers": int(workers),
            "processes": processes.get(channel),
        }
        for channel, (n, rate, workers) in busiest[:STATS_CHANNELS]
    ]
    return rows, distinct, complete
