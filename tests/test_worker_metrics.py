"""hub/metrics.py: the plain figures → Prometheus families, their labels, and /stats.

(Not tests/test_metrics.py: tests/e2e/test_metrics.py has that basename, and pytest's import
mode needs unique ones. The e2e file pins the exposed names over a live hub; this one pins
where each figure lands, in one process, in memory mode.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from support import async_wait_until

from hub import __version__
from hub.core.config import METRICS_DIR_ENV
from hub.metrics import (
    FANOUT_BUCKETS_S,
    Figures,
    Sample,
    WorkerMetrics,
    merge_history,
)
from hub.metrics.shared import merge_channels as _merge_channels

#: Figures field → (sample name, its labels besides ``worker``).
SAMPLES: dict[str, tuple[str, dict[str, str]]] = {
    "connections": ("hub_ws_connections", {}),
    "subscriptions": ("hub_ws_subscriptions", {}),
    "channels": ("hub_channels_active", {}),
    "broker_ready": ("hub_broker_ready", {}),
    "sse_streams": ("hub_sse_streams", {}),
    "connections_opened": ("hub_ws_connections_opened_total", {}),
    "received": ("hub_messages_received_total", {}),
    "published": ("hub_messages_published_total", {}),
    "delivered": ("hub_messages_delivered_total", {}),
    "dropped_publish_buffer_full": (
        "hub_messages_dropped_total",
        {"reason": "publish_buffer_full"},
    ),
    "dropped_rate_limited": ("hub_messages_dropped_total", {"reason": "rate_limited"}),
    "slow_consumer_disconnects": ("hub_ws_slow_consumer_disconnects_total", {}),
    "broker_reconnects": ("hub_broker_reconnects_total", {}),
    "broker_publish_errors": ("hub_broker_publish_errors_total", {}),
    "broker_gaps": ("hub_broker_gaps_total", {}),
    "broker_probe_failures": ("hub_broker_probe_failures_total", {}),
    "history_repaired": ("hub_history_repaired_total", {}),
    "history_gaps": ("hub_history_gaps_total", {}),
    "history_forged": ("hub_history_forged_total", {}),
    "sse_streams_opened": ("hub_sse_streams_opened_total", {}),
}

#: Figures fields counted per backend hook: (hook, count) pairs → sample name, labelled by hook.
PER_HOOK: dict[str, str] = {
    "hook_calls": "hub_hook_calls_total",
    "hook_errors": "hub_hook_errors_total",
}

#: /stats key of each Figures field (the two drop reasons are summed as ``dropped``).
STATS_KEYS = {f: f for f in SAMPLES if not f.startswith("dropped_")} | {"dropped": "dropped"}


@pytest.fixture(autouse=True)
def in_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Memory mode: no multiprocess directory from the environment."""
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    yield


def distinct() -> Figures:
    """A figure of its own for every field (broker_ready: True)."""
    values: dict[str, object] = {
        f.name: 10 + n for n, f in enumerate(dataclasses.fields(Figures)) if f.name not in PER_HOOK
    }
    hooks = {name: (("connect", 3 + n), ("rpc", 5 + n)) for n, name in enumerate(PER_HOOK)}
    return Figures(**{**values, **hooks, "broker_ready": True})  # type: ignore[arg-type]


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_every_figure_lands_in_its_own_sample() -> None:
    """Each field of Figures is one sample of its family, under the worker's label."""
    assert {f.name for f in dataclasses.fields(Figures)} == set(SAMPLES) | set(PER_HOOK)
    figures = distinct()
    got = samples(WorkerMetrics(worker=4, read=lambda: figures))
    for field, (name, labels) in SAMPLES.items():
        key = (name, tuple(sorted({"worker": "4", **labels}.items())))
        assert got.get(key) == float(getattr(figures, field)), (field, key)
    for field, name in PER_HOOK.items():
        for hook, value in getattr(figures, field):
            key = (name, (("hook", hook), ("worker", "4")))
            assert got.get(key) == float(value), (field, key)


def test_labels_are_the_worker_and_a_few_fixed_values() -> None:
    """Series are labelled only by worker, drop reason, bucket bound and hook: no channel adds
    one."""
    metrics = WorkerMetrics(worker=2, read=distinct)
    metrics.observe_fanout(0.001)
    metrics.observe_roundtrip(0.001)
    metrics.observe_probe_latency(0.001)
    got = samples(metrics)
    assert got
    for name, labels in got:
        label = dict(labels)
        assert label.get("worker") == "2", name
        assert set(label) <= {"worker", "reason", "le", "hook"}, name
        assert label.get("reason") in (None, "publish_buffer_full", "rate_limited"), name
        assert ("le" in label) == name.endswith("_bucket"), name


def test_counters_add_deltas_and_never_go_back() -> None:
    """Counters add the figures' deltas; a figure that went down lowers nothing."""
    figures = Figures(received=5)
    metrics = WorkerMetrics(worker=0, read=lambda: figures)
    key = ("hub_messages_received_total", (("worker", "0"),))
    assert samples(metrics)[key] == 5
    figures = Figures(received=2)
    assert samples(metrics)[key] == 5
    figures = Figures(received=4)
    assert samples(metrics)[key] == 7


def test_gauges_are_levels() -> None:
    """A gauge is the figure's current value, up or down."""
    figures = Figures(connections=9, broker_ready=True)
    metrics = WorkerMetrics(worker=0, read=lambda: figures)
    metrics.sync()
    figures = Figures(connections=3)
    got = samples(metrics)
    assert got[("hub_ws_connections", (("worker", "0"),))] == 3
    assert got[("hub_broker_ready", (("worker", "0"),))] == 0


def test_process_figures_are_per_worker() -> None:
    """The worker's own file descriptors and limit are exported under its label."""
    got = samples(WorkerMetrics(worker=1, read=Figures))
    w1 = (("worker", "1"),)
    assert 0 < got[("process_open_fds", w1)] <= got[("process_max_fds", w1)]
    assert got[("process_resident_memory_bytes", w1)] > 0
    assert ("process_cpu_seconds_total", w1) in got


def test_stats_shape() -> None:
    """/stats: who answered, broker, version, cumulative buckets, totals and per-worker rows."""
    figures = distinct()
    metrics = WorkerMetrics(worker=6, read=lambda: figures, broker="redis://:***@h:6379/0")
    metrics.observe_fanout(0.0002)
    metrics.observe_fanout(0.2)
    doc = metrics.stats()
    assert doc["answered_by"]["worker"] == 6 and isinstance(doc["answered_by"]["pid"], int)
    assert doc["multiprocess"] is False and doc["uptime_s"] >= 0
    assert (doc["broker"], doc["version"]) == ("redis://:***@h:6379/0", __version__)
    assert set(doc["histograms"]) == {"fanout_s", "redis_roundtrip_s", "probe_latency_s"}
    fanout = doc["histograms"]["fanout_s"]
    bounds = [le for le, _ in fanout]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    assert dict(map(tuple, fanout))[0.00025] == 1 and fanout[-1][1] == 2
    assert doc["histograms"]["redis_roundtrip_s"][-1][1] == 0
    dropped = figures.dropped_publish_buffer_full + figures.dropped_rate_limited
    expected = {
        key: int(getattr(figures, key)) if key != "dropped" else dropped for key in STATS_KEYS
    }
    (row,) = doc["workers"]
    assert row == {"worker": "6", "alive": True, **expected, "broker_ready": True}
    del expected["broker_ready"]
    assert doc["totals"] == {**expected, "workers": 1, "workers_ready": 1}


async def test_run_syncs_on_and_survives_a_failing_read(caplog: pytest.LogCaptureFixture) -> None:
    """run() syncs every interval; a read that fails is logged, and the next one counts."""
    reads = iter([RuntimeError("a figure could not be read")])

    def read() -> Figures:
        error = next(reads, None)
        if error is not None:
            raise error
        return Figures(received=3)

    metrics = WorkerMetrics(worker=0, read=read)
    task = asyncio.create_task(metrics.run(interval_s=0.01))
    try:
        await async_wait_until(
            lambda: (
                metrics.registry.get_sample_value("hub_messages_received_total", {"worker": "0"})
                == 3
            ),
            5,
            "a sync after the failed one",
        )
    finally:
        task.cancel()
    assert any(
        r.levelno == logging.ERROR and "syncing the metrics failed" in r.getMessage()
        for r in caplog.records
    )


def sample(t: float, connections: int = 0, received: int = 0, fanout: int = 0) -> Sample:
    buckets = [0] * (len(FANOUT_BUCKETS_S) + 1)
    buckets[2] = fanout  # 0.25 ms
    return Sample(t, connections, received, 2 * received, 0, tuple(buckets))


def test_history_sums_the_workers_second_by_second() -> None:
    """Two workers' rings: rates from consecutive samples, summed per second; a skipped
    second still counts the worker; nothing after the last second every worker sampled."""
    zero = sample(100.02, connections=1, received=0)
    one = [zero, sample(101.02, 1, 100, 1), sample(102.03, 2, 200, 1), sample(103.01, 2, 300, 1)]
    # The other worker sampled late once and skipped second 102.
    two = [sample(100.05, 3, 0), sample(101.05, 3, 50), sample(103.05, 3, 150, 4)]
    doc = merge_history([one, two], since=0, until=103.5)
    assert doc["t"] == [101, 102, 103]
    assert doc["connections"] == [1 + 3, 2 + 3, 2 + 3]
    received = doc["received_per_s"]
    assert received[0] == pytest.approx(100 + 50, rel=0.02)
    assert received[1] == pytest.approx(100 / 1.01 + 50, rel=0.02)  # 50/s over 2 s
    assert doc["delivered_per_s"][0] == pytest.approx(2 * received[0], rel=0.01)
    assert doc["fanout_p99_s"] == [0.00025, None, 0.00025]
    assert merge_history([one, two], since=101.5, until=102.5)["t"] == [102]


def test_channels_over_workers_sum_subscribers_and_keep_the_rate() -> None:
    """One channel on two workers: subscribers summed, rate the highest seen, shown once."""
    docs = [
        {"num_channels": 2, "channels": [["news", 5, 499.0], ["quiet", 1, 0.0]]},
        {"num_channels": 1, "channels": [["news", 2, 501.0]]},
    ]
    rows, distinct, complete = _merge_channels(docs, {"news": 3})
    assert (distinct, complete) == (2, True)
    assert rows[0] == {
        "channel": "news",
        "subscribers": 7,
        "messages_per_s": 501.0,
        "workers": 2,
        "processes": 3,
    }
    assert rows[1]["channel"] == "quiet" and rows[1]["processes"] is None
    docs[1]["num_channels"] = 9  # that worker shared only its busiest
    assert _merge_channels(docs, {})[1:] == (9, False)


def test_samples_channel_rates_and_the_shared_file(tmp_path: Path) -> None:
    """A sample takes the figures into the history and the channels' messages into rates;
    with a multiprocess directory, it writes them whole for the other workers."""
    figures = Figures(connections=2, received=10, channels=1)
    messages = {"news": 50}
    metrics = WorkerMetrics(
        worker=1,
        read=lambda: figures,
        channels=lambda: [("news", 2)],
        take_channel_messages=lambda: messages,
    )
    metrics.multiprocess_dir = str(tmp_path)
    metrics.observe_fanout(0.0002)
    metrics.sync()
    metrics.sample()
    assert metrics.channel_rates["news"] > 0
    (first,) = metrics.history
    assert (first.connections, first.received) == (2, 10) and sum(first.fanout) == 1
    other = WorkerMetrics(worker=0, read=Figures)
    other.multiprocess_dir = str(tmp_path)
    (shared,) = other._read_shared()
    assert shared["worker"] == "1" and shared["num_channels"] == 1
    assert shared["channels"][0][:2] == ["news", 2]
    kept = [Sample.from_json(row) for row in shared["history"]]
    assert kept == [dataclasses.replace(first, t=round(first.t, 3))]
    assert [p.name for p in tmp_path.iterdir()] == ["hub-stats-1.json"]


def test_stats_has_the_history_and_no_redis_on_the_memory_broker() -> None:
    """/stats carries the merged history, the channels and, without Redis, redis: null."""
    metrics = WorkerMetrics(worker=0, read=lambda: Figures(connections=4))
    for _ in range(3):
        metrics.sync()
        metrics.sample()
    doc = metrics.stats()
    assert doc["redis"] is None and doc["channels"] == [] and doc["num_channels"] == 0
    assert set(doc["history"]) >= {"t", "connections", "received_per_s", "fanout_p99_s"}


def test_a_metric_file_being_created_is_read_again(tmp_path: Path) -> None:
    """A worker creating its file leaves it empty for an instant; the scrape reads again."""
    metrics = WorkerMetrics(worker=0, read=lambda: Figures(received=3))
    registry = metrics._exposition_registry
    empty = tmp_path / "counter_1.db"
    empty.touch()
    failing = CollectorRegistry()
    MultiProcessCollector(failing, path=str(tmp_path))  # type: ignore[no-untyped-call]
    answers = iter([failing, failing])
    metrics._exposition_registry = lambda: next(answers, None) or registry()  # type: ignore[method-assign]
    body, _ = metrics.exposition()
    assert b'hub_messages_received_total{worker="0"} 3.0' in body
