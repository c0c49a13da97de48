"""``WorkerMetrics``: one worker's Prometheus metrics, synced from its plain counters about
once a second and before a scrape, its samples for /stats' history, and the /metrics and
/stats answers over every worker (see the package's docstring)."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hub import __version__
from hub.metrics.families import FANOUT_BUCKETS_S, Families
from hub.metrics.figures import SYNC_INTERVAL_S, Figures, multiprocess_dir
from hub.metrics.history import HISTORY_S, Sample, merge_history
from hub.metrics.redis_info import RedisFigures
from hub.metrics.shared import SHARED_CHANNELS, STALE_S, merge_channels, read_shared, write_shared
from hub.metrics.stats import by_worker

__all__ = ["WorkerMetrics"]

logger = logging.getLogger("hub.metrics")

#: How often the process figures (memory, CPU, open files) are read from /proc between scrapes.
#: Counting open files lists /proc/self/fd, one entry per socket: at 16,000 sockets a worker,
#: once a second, that was ~4% of the workers' CPU during a broadcast (perf, 100k sockets).
PROCESS_SYNC_S = 10.0


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
        self._redis = RedisFigures(redis_info)
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
        families = Families(self.registry, worker)
        self._counters = families.counters
        self._gauges = families.gauges
        self._last: dict[str, int] = {key: 0 for key, _ in self._counters}
        self.fanout_duration = families.fanout_duration
        self.broker_roundtrip = families.broker_roundtrip
        self._process = ProcessCollector(registry=None)
        self._process_gauges = families.process_gauges
        self._process_cpu = families.process_cpu
        self._last_cpu_s = 0.0
        self._process_synced_at = -PROCESS_SYNC_S
        self.probe_latency = families.probe_latency
        self.observe_probe_latency: Callable[[float], None] = self.probe_latency.observe
        self._sampled_at = self.started_at
        self._hook_calls = families.hook_calls
        self._hook_errors = families.hook_errors
        self._hook_duration = families.hook_duration
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

    def sync(self, *, process: bool = False) -> None:
        """Copy the plain counters into the Prometheus metrics (deltas for counters); the
        process figures too when ``process`` or every PROCESS_SYNC_S."""
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
        now = time.monotonic()
        if process or now - self._process_synced_at >= PROCESS_SYNC_S:
            self._process_synced_at = now
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
            write_shared(self.multiprocess_dir, self.worker, self._shared(now))

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
        return read_shared(self.multiprocess_dir, self.worker)

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
        self.sync(process=True)
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
        per_worker, totals, histograms = by_worker(self._collect())
        now = time.time()
        alive = {row["worker"] for row in per_worker if row["alive"]}
        own = self._shared(now)
        others = self._read_shared()
        # A dead worker's channels go at once (its gauges are gone); its history stays.
        live = [own] + [d for d in others if d["worker"] in alive and now - d["time"] <= STALE_S]
        redis, processes = self._redis.stats()
        channels, num_channels, complete = merge_channels(live, processes)
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
            "histograms": histograms,
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
