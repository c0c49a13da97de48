"""hub/app.py: what one worker is built of from its Settings, and one run in this process,
from start to a clean stop (the memory broker, ports the OS picks)."""

from __future__ import annotations

import asyncio
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support import free_port, stats, t
from support.tls import self_signed

from hub.app import App
from hub.brokers.memory import MemoryBroker
from hub.brokers.redis import RedisBroker
from hub.brokers.redispy import subscribed_channels
from hub.core.config import Settings
from hub.core.errors import ConfigError
from hub.http.api import PublishApi
from hub.http.stream import SseClient
from hub.metrics import STATS_CHANNELS
from hub.ws.connection import HubConnection


def settings(**values: Any) -> Settings:
    return Settings(port=0, **values)


async def test_without_api_port_there_is_no_http_api() -> None:
    """No --api-port: no PublishApi, and the SSE figures are zero."""
    app = App(settings())
    assert app.api is None
    figures = app._figures()
    assert (figures.sse_streams, figures.sse_streams_opened) == (0, 0)


async def test_the_http_api_takes_its_settings() -> None:
    """With --api-port the API takes its key, bounds, origins, keepalive and JWT auth."""
    app = App(
        settings(
            api_port=free_port(),
            api_key="k",
            max_message_bytes=1234,
            allowed_origins="https://a.example",
            sse_keepalive_s=7.5,
            max_buffered_bytes=4321,
            jwt_secret="a-secret-that-is-long-enough-for-hs256!",
        )
    )
    api = app.api
    assert isinstance(api, PublishApi)
    assert (api.api_key, api.max_message_bytes) == ("k", 1234)
    assert api.allowed_origins == frozenset({"https://a.example"})
    assert (api.sse.keepalive_s, api.sse.max_buffered_bytes) == (7.5, 4321)
    assert api.authenticator is not None and api.authenticator is app.handler.authenticator
    assert api.node is app.node and api.list_channels is None  # no Redis to ask


async def test_the_broker_follows_the_redis_url() -> None:
    """No Redis URL: the memory broker; with one, RedisBroker, its channels, a hidden password."""
    assert isinstance(App(settings()).broker, MemoryBroker)
    assert App(settings()).metrics.broker == "memory"
    url = "redis://:s3cret@127.0.0.1:1/0"
    app = App(settings(redis_url=url, channel_prefix="p:", api_port=free_port()))
    assert isinstance(app.broker, RedisBroker)
    assert app.metrics.broker == "redis://:***@127.0.0.1:1/0"
    assert app.api is not None and isinstance(app.api.list_channels, partial)
    assert app.api.list_channels.func is subscribed_channels
    assert app.api.list_channels.args == (url, "p:")


async def test_tls_only_with_a_certificate_and_its_key(tmp_path: Path) -> None:
    """A TLS context only with --tls-cert and --tls-key; files that do not load fail the build."""
    assert App(settings()).server.ssl_context is None
    cert, key = map(str, self_signed(tmp_path))
    context = App(settings(tls_cert=cert, tls_key=key)).server.ssl_context
    assert isinstance(context, ssl.SSLContext) and context.protocol == ssl.PROTOCOL_TLS_SERVER
    with pytest.raises(ConfigError, match="HUB_TLS_CERT"):
        App(settings(tls_cert=key, tls_key=cert))


async def test_the_figures_read_the_counters_they_name() -> None:
    """Each figure of the metrics comes from its own plain counter."""
    app = App(settings(api_port=free_port()))
    node, broker_stats = app.node, app.broker.stats
    node.num_received, node.num_delivered, node.num_rate_limited = 3, 5, 7
    node.num_slow_consumers, node.num_unrepaired_gaps = 11, 13
    broker_stats.num_published, broker_stats.num_dropped = 17, 19
    broker_stats.num_reconnects, broker_stats.num_publish_errors = 23, 29
    app.handler.num_opened, app.handler.num_connections = 31, 37
    assert app.api is not None
    app.api.sse.num_streams_total = 41
    figures = app._figures()
    assert (figures.received, figures.delivered, figures.dropped_rate_limited) == (3, 5, 7)
    assert figures.slow_consumer_disconnects == 11 + HubConnection.num_overflows
    assert figures.history_gaps == 13
    assert (figures.published, figures.dropped_publish_buffer_full) == (17, 19)
    assert (figures.broker_reconnects, figures.broker_publish_errors) == (23, 29)
    assert (figures.connections_opened, figures.connections) == (31, 37)
    assert figures.sse_streams_opened == 41 and figures.sse_streams == 0


async def test_a_run_serves_until_stopping_then_stops_cleanly() -> None:
    """run() serves (the busiest channels first in /stats) until stopping is set, then stops."""
    api_port = free_port()
    app = App(settings(api_port=api_port))
    started = asyncio.Event()
    runner = asyncio.create_task(app.run(on_started=lambda a: started.set()))
    try:
        async with asyncio.timeout(t(10)):
            await started.wait()
        members = [SseClient(None, is_chunked=True, user=None) for _ in range(STATS_CHANNELS + 3)]
        for n, member in enumerate(members):
            await app.node.join(f"ch{n:02d}", member)
        await app.node.join("ch07", SseClient(None, is_chunked=True, user=None))
        doc = await stats(app.port)
        assert doc["num_channels"] == STATS_CHANNELS + 3 and doc["channels_complete"]
        assert len(doc["channels"]) == STATS_CHANNELS
        assert [{k: row[k] for k in ("channel", "subscribers")} for row in doc["channels"][:3]] == [
            {"channel": "ch07", "subscribers": 2},
            {"channel": "ch00", "subscribers": 1},
            {"channel": "ch01", "subscribers": 1},
        ]
        _, writer = await asyncio.open_connection("127.0.0.1", api_port)
        writer.close()
    finally:
        app.stopping.set()
        async with asyncio.timeout(t(10)):
            await runner
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", api_port)
