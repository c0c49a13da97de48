"""GET /metrics: the Prometheus exposition of every worker, fed from the hot path's counters."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable

import orjson
from prometheus_client.parser import text_string_to_metric_families
from support import (
    HubProcess,
    RedisServer,
    async_wait_until,
    http_get,
    scrape,
    t,
    total,
    wait_workers_ready,
)
from websockets.asyncio.client import ClientConnection, connect

from hub.metrics import Figures, WorkerMetrics

# The names a Grafana dashboard relies on: a contract.
CONTRACT = {
    "hub_ws_connections": "gauge",
    "hub_ws_connections_opened": "counter",
    "hub_ws_subscriptions": "gauge",
    "hub_channels_active": "gauge",
    "hub_messages_received": "counter",
    "hub_messages_published": "counter",
    "hub_messages_delivered": "counter",
    "hub_messages_dropped": "counter",
    "hub_ws_slow_consumer_disconnects": "counter",
    "hub_broker_reconnects": "counter",
    "hub_broker_publish_errors": "counter",
    "hub_broker_gaps": "counter",
    "hub_broker_probe_failures": "counter",
    "hub_history_repaired": "counter",
    "hub_history_gaps": "counter",
    "hub_fanout_duration_seconds": "histogram",
    "hub_broker_roundtrip_seconds": "histogram",
    "hub_probe_latency_seconds": "histogram",
    "hub_broker_ready": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "process_cpu_seconds": "counter",
}

StartHub = Callable[..., HubProcess]


def assert_no_channel_labels(
    samples: dict[str, list[tuple[dict[str, str], float]]], *channels: str
) -> None:
    for name, series in samples.items():
        for labels, _ in series:
            assert "worker" in labels, name
            for value in labels.values():
                assert value not in channels, (name, labels)


def test_sync_adds_the_deltas_of_the_plain_counters() -> None:
    """sync() copies the plain counters (deltas) and levels; nothing else touches them."""
    figures = Figures(connections=2, connections_opened=5, received=7, broker_ready=True)
    metrics = WorkerMetrics(worker=3, read=lambda: figures)
    metrics.sync()
    figures = Figures(connections=1, connections_opened=6, received=10, delivered=4)
    metrics.observe_fanout(0.0002)
    body, content_type = metrics.exposition()  # syncs first
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    w3 = (("worker", "3"),)
    assert samples[("hub_ws_connections", w3)] == 1
    assert samples[("hub_ws_connections_opened_total", w3)] == 6
    assert samples[("hub_messages_received_total", w3)] == 10
    assert samples[("hub_messages_delivered_total", w3)] == 4
    assert samples[("hub_broker_ready", w3)] == 0
    assert samples[("hub_fanout_duration_seconds_count", w3)] == 1
    assert not [name for name, _ in samples if name.endswith("_created")]
    doc = metrics.stats()
    assert doc["totals"]["received"] == 10 and doc["totals"]["workers"] == 1
    assert doc["workers"][0]["worker"] == "3" and doc["workers"][0]["connections"] == 1


async def test_metrics_follow_real_traffic(own_redis: RedisServer, start_hub: StartHub) -> None:
    """Every contract metric is exposed, parses, and moves after real traffic."""
    hub = start_hub("--workers", "1", "--redis", own_redis.url, wait=False)
    hub.wait_ready(20)
    status, headers, body = await http_get(hub.port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    types = {f.name: f.type for f in text_string_to_metric_families(body.decode())}
    for name, kind in CONTRACT.items():
        assert types.get(name) == kind, (name, types.get(name))

    channel = "metrics.room-7f3a"
    async with connect(hub.url(channel)) as a, connect(hub.url(channel)) as b:
        # A join is complete once the channel's subscription is live; wait for it.
        await async_wait_until(
            lambda: _equals(hub.port, "hub_ws_subscriptions", 2), 10, "both subscriptions"
        )
        for i in range(3):
            await a.send(f"hello {i}")
        for client in (a, b):
            got = [await asyncio.wait_for(client.recv(), t(5)) for _ in range(3)]
            assert got == ["hello 0", "hello 1", "hello 2"]
        await async_wait_until(
            lambda: _equals(hub.port, "hub_messages_delivered_total", 6), 10, "6 deliveries"
        )
        samples = await scrape(hub.port)
        assert total(samples, "hub_ws_connections") == 2
        assert total(samples, "hub_ws_connections_opened_total") == 2
        assert total(samples, "hub_channels_active") == 1
        assert total(samples, "hub_messages_received_total") == 3
        assert total(samples, "hub_messages_published_total") == 3
        assert total(samples, "hub_broker_ready") == 1
        assert total(samples, "hub_fanout_duration_seconds_count") >= 1
        assert total(samples, "hub_broker_roundtrip_seconds_count") >= 1
        await async_wait_until(
            lambda: _at_least(hub.port, "hub_probe_latency_seconds_count", 1),
            10,
            "a probe to come back",
        )
        assert sorted(samples["hub_messages_dropped_total"], key=str) == [
            ({"worker": "0", "reason": "publish_buffer_full"}, 0.0),
            ({"worker": "0", "reason": "rate_limited"}, 0.0),
        ]
        assert_no_channel_labels(samples, channel)
    await async_wait_until(
        lambda: _equals(hub.port, "hub_ws_connections", 0), 10, "connections closed"
    )


async def _equals(port: int, name: str, expected: float) -> bool:
    try:
        samples = await scrape(port)
    except ConnectionError:
        # A connection queued on a worker's listening socket as it died is reset (SO_REUSEPORT).
        return False
    return total(samples, name) == expected


def _worker_pids(hub: HubProcess) -> dict[str, int]:
    """worker index → pid, from the JSON log lines of the workers."""
    pids = {}
    for line in hub.output().splitlines():
        if line.startswith("{"):
            doc = orjson.loads(line)
            if "worker" in doc and doc["msg"].startswith(f"worker {doc['worker']} serving"):
                pids[str(doc["worker"])] = doc["pid"]
    return pids


async def test_metrics_cover_every_worker(own_redis: RedisServer, start_hub: StartHub) -> None:
    """With --workers 2, whichever worker answers, the totals cover both; a dead worker's
    gauges go, its counters stay, and the metric files go when the hub stops."""
    hub = start_hub("--workers", "2", "--redis", own_redis.url, "--log-format", "json", wait=False)
    hub.wait_serving(20)
    await wait_workers_ready(hub, 2)
    channel = "metrics.workers-9c1d"
    clients: list[ClientConnection] = []
    try:
        # SO_REUSEPORT spreads connections over the workers; open them until both have some.
        per_worker: dict[str, float] = {}
        for _ in range(10):
            for _ in range(4):
                clients.append(await connect(hub.url(channel)))
            await _wait_connections(hub, len(clients))
            per_worker = await _connections_by_worker(hub)
            if len(per_worker) == 2 and min(per_worker.values()) > 0:
                break
        assert sorted(per_worker) == ["0", "1"] and min(per_worker.values()) > 0, per_worker
        opened = len(clients)
        # The scrapes land on both workers; every one of them sees every worker.
        for _ in range(8):
            samples = await scrape(hub.port)
            assert total(samples, "hub_ws_connections") == opened
            assert total(samples, "hub_ws_connections_opened_total") == opened
            assert {labels["worker"] for labels, _ in samples["hub_broker_ready"]} == {"0", "1"}
            assert_no_channel_labels(samples, channel)
            # Process metrics per worker, which multiprocess mode would otherwise drop.
            for name in ("process_resident_memory_bytes", "process_open_fds", "process_max_fds"):
                by_worker = {labels["worker"]: value for labels, value in samples[name]}
                assert set(by_worker) == {"0", "1"} and min(by_worker.values()) > 0, name
            open_fds = {labels["worker"]: v for labels, v in samples["process_open_fds"]}
            assert sum(open_fds.values()) >= opened  # every socket is a file

        await clients[0].send("to everyone")
        await async_wait_until(
            lambda: _equals(hub.port, "hub_messages_delivered_total", opened),
            10,
            f"{opened} deliveries over both workers",
        )

        # A worker dies: its live gauges go (mark_process_dead), its counters stay.
        pids = _worker_pids(hub)
        assert sorted(pids) == ["0", "1"], hub.output()
        os.kill(pids["1"], signal.SIGKILL)
        await _wait_connections(hub, opened - per_worker["1"])
        samples = await scrape(hub.port)
        assert total(samples, "hub_ws_connections_opened_total") == opened
        assert total(samples, "hub_messages_delivered_total") == opened
    finally:
        for client in clients:
            await client.close()
    assert hub.stop() == 0, hub.output()
    match = re.search(r"metrics of all workers in (\S+?)\"", hub.output())
    assert match is not None, hub.output()
    assert not await asyncio.to_thread(os.path.exists, match.group(1))


async def _wait_connections(hub: HubProcess, expected: float) -> None:
    await async_wait_until(
        lambda: _equals(hub.port, "hub_ws_connections", expected),
        10,
        f"hub_ws_connections to sum to {expected}",
    )


async def _connections_by_worker(hub: HubProcess) -> dict[str, float]:
    samples = await scrape(hub.port)
    return {labels["worker"]: value for labels, value in samples["hub_ws_connections"]}


def test_the_broker_url_in_stats_hides_its_password() -> None:
    from hub.core.errors import redact_url

    assert redact_url(None) == "memory"
    assert redact_url("unix:///tmp/hub-redis-x/redis.sock") == "unix:///tmp/hub-redis-x/redis.sock"
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://user:s3cret@h:6380") == "rediss://user:***@h:6380"


async def _at_least(port: int, name: str, expected: float) -> bool:
    return total(await scrape(port), name) >= expected
