"""Wiring for one worker process: broker, node, WebSocket server, signals, uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from functools import partial
from typing import Any

import uvloop

from hub.brokers import Broker, BrokerOptions, create_engines
from hub.brokers.redispy import async_client, subscribed_channels
from hub.core.addresses import is_loopback
from hub.core.auth import Authenticator
from hub.core.config import Settings
from hub.core.envelope import Envelope
from hub.core.errors import redact_url
from hub.http.api import PublishApi
from hub.metrics import Figures, WorkerMetrics
from hub.node import Node
from hub.node.state import BrokerChannel
from hub.runtime.limits import raise_open_file_limit
from hub.runtime.tls import server_tls_context
from hub.ws.connection import HubConnection
from hub.ws.handler import WebSocketHandler
from hub.ws.routes import AdminGuard, Routes
from hub.ws.server import WebSocketServer, add_health_routes

__all__ = ["App", "run_worker"]

logger = logging.getLogger(__name__)

#: Files a worker keeps for itself (Redis, logs, listening socket, Python's own).
RESERVED_FILES = 64
#: The fields of Redis' INFO memory and INFO clients that /stats shows.
REDIS_INFO_FIELDS = (
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "connected_clients",
    "blocked_clients",
    "pubsub_clients",
)


class _CountingNode(Node):
    """The node, counting the messages it fans out per channel for /stats' channel rates.

    One dict update per channel per broker batch; the metrics take the counts (and reset
    them) once a second, so the dict holds only the channels of the last second.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel_messages: dict[str, int] = {}

    def dispatch(self, channel: str, messages: list[Envelope], state: BrokerChannel) -> None:
        counts = self.channel_messages
        counts[channel] = counts.get(channel, 0) + len(messages)
        super().dispatch(channel, messages, state)

    def take_channel_messages(self) -> dict[str, int]:
        counts, self.channel_messages = self.channel_messages, {}
        return counts


class App:
    """One worker: builds the broker, node and server from Settings, and runs until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker: int = 0,
        reuse_port: bool = False,
        supervised: bool = False,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.reuse_port = reuse_port
        self.supervised = supervised
        self.metrics = WorkerMetrics(
            worker=worker,
            read=self._figures,
            broker=redact_url(settings.redis_url),
            channels=lambda: self.node.channels(),
            take_channel_messages=lambda: self.node.take_channel_messages(),
            redis_info=(
                partial(redis_figures, settings.redis_url, settings.channel_prefix)
                if settings.redis_url
                else None
            ),
        )
        engines = create_engines(
            settings.redis_url or None,
            BrokerOptions(
                prefix=settings.channel_prefix,
                publish_buffer_messages=settings.publish_buffer_messages,
                publish_buffer_bytes=settings.publish_buffer_bytes,
                probe_interval_s=settings.probe_interval_s,
                probe_timeout_s=settings.probe_timeout_s,
                on_roundtrip=self.metrics.observe_roundtrip,
                on_probe_latency=self.metrics.observe_probe_latency,
            ),
        )
        self.broker: Broker = engines.broker
        self.node = _CountingNode(
            broker=self.broker,
            presence=engines.presence,
            max_buffered_bytes=settings.max_buffered_bytes,
            unsubscribe_delay_s=settings.unsubscribe_delay_s,
            rules=settings.channel_rules(),
            recovery_max_messages=settings.recovery_max_messages,
            presence_ttl_s=settings.presence_ttl_s,
            on_fanout=self.metrics.observe_fanout,
        )
        self.routes = Routes(
            AdminGuard(token=settings.admin_token or None, is_open=is_loopback(settings.host))
        )
        add_health_routes(
            self.routes,
            is_ready=lambda: self.node.is_ready,
            metrics=self.metrics.exposition,
            stats=self._stats,
        )
        authenticator = Authenticator.create(
            secret=settings.jwt_secret, public_key=settings.jwt_public_key
        )
        self.handler = WebSocketHandler(
            node=self.node,
            routes=self.routes,
            authenticator=authenticator,
            allowed_origins=settings.origins,
            max_connections=settings.max_connections,
            max_subscriptions=settings.max_subscriptions,
            publish_rate=settings.publish_rate,
            publish_burst=settings.publish_burst,
        )
        self.api = _api(settings, self.node, authenticator)
        self.server = _server(settings, self.handler)
        self.stopping = asyncio.Event()
        self._metrics_task: asyncio.Task[None] | None = None

    def _stats(self) -> dict[str, Any]:
        """/stats: the figures of every worker, their busiest channels and last minutes, and
        Redis' memory and clients (``WorkerMetrics.stats``)."""
        return self.metrics.stats()

    def _figures(self) -> Figures:
        """The plain counters of the node, the broker and the handler, for the metrics."""
        node, stats, handler = self.node, self.broker.stats, self.handler
        return Figures(
            connections=handler.num_connections,
            subscriptions=node.num_subscriptions,
            channels=node.num_channels,
            broker_ready=node.is_ready,
            connections_opened=handler.num_opened,
            received=node.num_received,
            published=stats.num_published,
            delivered=node.num_delivered,
            dropped_publish_buffer_full=stats.num_dropped,
            dropped_rate_limited=node.num_rate_limited,
            slow_consumer_disconnects=node.num_slow_consumers + HubConnection.num_overflows,
            broker_reconnects=stats.num_reconnects,
            broker_publish_errors=stats.num_publish_errors,
            broker_gaps=stats.num_gaps,
            broker_probe_failures=stats.num_probe_failures,
            history_repaired=node.history.num_repaired,
            history_gaps=node.num_unrepaired_gaps,
            history_forged=node.history.num_forged,
            sse_streams=len(self.api.sse.clients) if self.api else 0,
            sse_streams_opened=self.api.sse.num_streams_total if self.api else 0,
        )

    async def start(self) -> None:
        s = self.settings
        capacity = raise_open_file_limit() - RESERVED_FILES
        await self.node.start()
        self._metrics_task = asyncio.create_task(self.metrics.run())
        await self.server.start(s.host, s.port, reuse_port=self.reuse_port)
        if self.api is not None:
            await self.api.start(s.api_host, s.api_port, reuse_port=self.reuse_port)
        logger.info(
            "worker %d serving %s://%s:%d (broker %s, capacity %d connections: the open-file "
            "limit; run more workers for more)",
            self.worker,
            "wss" if s.tls_cert else "ws",
            s.host,
            self.port,
            type(self.broker).__name__,
            capacity,
        )

    @property
    def port(self) -> int:
        return self.server.port

    async def run(self, *, on_started: Callable[[App], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.start()
        if on_started is not None:
            on_started(self)
        watcher = asyncio.create_task(self._watch_parent()) if self.supervised else None
        await self.stopping.wait()
        if watcher is not None:
            watcher.cancel()
        await self.stop()

    async def _watch_parent(self) -> None:
        """A worker whose supervisor died stops too, instead of serving on unsupervised."""
        parent = os.getppid()
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != parent:
                logger.warning("supervisor %d is gone; worker %d stopping", parent, self.worker)
                self.stopping.set()
                return

    async def stop(self) -> None:
        logger.info("worker %d shutting down: closing connections with 1001", self.worker)
        await self.server.stop()
        if self.api is not None:
            await self.api.stop()
        await self.node.close()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
        try:
            self.metrics.sync()  # the last counts, for the workers that outlive this one
        except Exception:
            logger.exception("the last metrics sync failed")


def _api(settings: Settings, node: Node, authenticator: Authenticator | None) -> PublishApi | None:
    """The HTTP API and SSE listener, when --api-port is set."""
    if not settings.api_port:
        return None
    redis_url = settings.redis_url
    return PublishApi(
        node=node,
        api_key=settings.api_key,
        max_message_bytes=settings.max_message_bytes,
        list_channels=(
            partial(subscribed_channels, redis_url, settings.channel_prefix) if redis_url else None
        ),
        authenticator=authenticator,
        allowed_origins=settings.origins,
        sse_keepalive_s=settings.sse_keepalive_s,
        max_buffered_bytes=settings.max_buffered_bytes,
    )


async def redis_figures(url: str, prefix: str) -> dict[str, Any]:
    """Redis' memory and clients (INFO memory, INFO clients: summed over the nodes of a
    cluster), and every channel under ``prefix`` that a hub process of any instance
    subscribes to, with how many (``subscribed_channels``); through short-lived clients."""
    client = async_client(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        sections = [await client.info("memory"), await client.info("clients")]
    finally:
        await client.aclose()
    figures: dict[str, Any] = {}  # only the fields this Redis has (pubsub_clients: 7.4)
    for info in sections:
        # A cluster client answers {node: {field: value}}; a plain one {field: value}.
        nodes = list(info.values()) if all(isinstance(v, dict) for v in info.values()) else [info]
        figures["nodes"] = len(nodes)
        for node in nodes:
            for name in REDIS_INFO_FIELDS:
                if name in node:
                    figures[name] = figures.get(name, 0) + int(node[name])
    channels = await subscribed_channels(url, prefix)
    return figures | {"channels": len(channels), "channel_processes": channels}


def _server(settings: Settings, handler: WebSocketHandler) -> WebSocketServer:
    return WebSocketServer(
        handler,
        compression=settings.compression,
        max_message_bytes=settings.max_message_bytes,
        ping_interval_s=settings.ping_interval_s,
        ping_timeout_s=settings.ping_timeout_s,
        max_buffered_bytes=settings.max_buffered_bytes,
        ssl_context=(
            server_tls_context(settings.tls_cert, settings.tls_key)
            if settings.tls_cert and settings.tls_key
            else None
        ),
    )


def run_worker(
    settings: Settings, *, worker: int = 0, reuse_port: bool = False, supervised: bool = False
) -> None:
    """Run one worker on uvloop until SIGTERM or SIGINT."""

    async def main() -> None:
        app = App(settings, worker=worker, reuse_port=reuse_port, supervised=supervised)
        await app.run()

    uvloop.run(main())
