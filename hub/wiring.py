"""The parts of one worker, built from Settings: the metrics, the broker's engines, the node,
the backend hooks, the authenticator, the WebSocket handler and server, and the HTTP API.
``App`` wires them together and runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from hub import __version__
from hub.brokers import BrokerOptions, Engines, create_engines
from hub.brokers.redispy import async_client, subscribed_channels
from hub.core.auth import Authenticator
from hub.core.config import Settings
from hub.core.errors import redact_url
from hub.hooks import HookProxy, JwksKeys
from hub.http.api import PublishApi
from hub.metrics import Figures, WorkerMetrics
from hub.node import Node
from hub.runtime.tls import server_tls_context
from hub.ws.handler import WebSocketHandler
from hub.ws.routes import Routes
from hub.ws.server import WebSocketServer

__all__ = [
    "api",
    "authenticator",
    "engines",
    "handler",
    "hooks",
    "jwks",
    "node",
    "redis_figures",
    "server",
    "worker_metrics",
]

#: The fields of Redis' INFO memory and INFO clients that /stats shows.
REDIS_INFO_FIELDS = (
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "connected_clients",
    "blocked_clients",
    "pubsub_clients",
)


def worker_metrics(
    settings: Settings,
    worker: int,
    *,
    read: Callable[[], Figures],
    channels: Callable[[], Iterable[tuple[str, int]]],
    take_channel_messages: Callable[[], Mapping[str, int]],
) -> WorkerMetrics:
    """The worker's metrics, with Redis' figures for /stats when there is a Redis."""
    return WorkerMetrics(
        worker=worker,
        read=read,
        broker=redact_url(settings.redis_url),
        channels=channels,
        take_channel_messages=take_channel_messages,
        redis_info=(
            partial(redis_figures, settings.redis_url, settings.channel_prefix)
            if settings.redis_url
            else None
        ),
    )


def engines(settings: Settings, metrics: WorkerMetrics) -> Engines:
    """The broker and presence engines: Redis' with --redis-url, else in memory."""
    return create_engines(
        settings.redis_url or None,
        BrokerOptions(
            prefix=settings.channel_prefix,
            publish_buffer_messages=settings.publish_buffer_messages,
            publish_buffer_bytes=settings.publish_buffer_bytes,
            probe_interval_s=settings.probe_interval_s,
            probe_timeout_s=settings.probe_timeout_s,
            on_roundtrip=metrics.observe_roundtrip,
            on_probe_latency=metrics.observe_probe_latency,
        ),
    )


def node(settings: Settings, engines: Engines, metrics: WorkerMetrics) -> Node:
    return Node(
        broker=engines.broker,
        presence=engines.presence,
        max_buffered_bytes=settings.max_buffered_bytes,
        unsubscribe_delay_s=settings.unsubscribe_delay_s,
        rules=settings.channel_rules(),
        recovery_max_messages=settings.recovery_max_messages,
        presence_ttl_s=settings.presence_ttl_s,
        on_fanout=metrics.observe_fanout,
        version=__version__,
    )


def hooks(settings: Settings, metrics: WorkerMetrics) -> HookProxy | None:
    """The backend's hooks, only when some --proxy-*-url is set."""
    urls = settings.hook_urls
    if not urls:
        return None
    return HookProxy(
        urls, timeout_s=settings.proxy_timeout_s, on_latency=metrics.observe_hook_latency
    )


def jwks(settings: Settings) -> JwksKeys | None:
    """The key set of --jwt-jwks-url, when it is set."""
    if not settings.jwt_jwks_url:
        return None
    return JwksKeys(settings.jwt_jwks_url, timeout_s=settings.proxy_timeout_s)


def authenticator(settings: Settings, jwks: JwksKeys | None) -> Authenticator | None:
    """The JWT check: against the key set when there is one, else the secret or public key."""
    if jwks is not None:
        return Authenticator.with_key_set(jwks.lookup, jwks.refresh)
    return Authenticator.create(secret=settings.jwt_secret, public_key=settings.jwt_public_key)


def handler(
    settings: Settings,
    node: Node,
    routes: Routes,
    authenticator: Authenticator | None,
    hooks: HookProxy | None,
) -> WebSocketHandler:
    return WebSocketHandler(
        node=node,
        routes=routes,
        authenticator=authenticator,
        allowed_origins=settings.origins,
        max_connections=settings.max_connections,
        max_subscriptions=settings.max_subscriptions,
        publish_rate=settings.publish_rate,
        publish_burst=settings.publish_burst,
        subscribe_rate=settings.subscribe_rate,
        subscribe_burst=settings.subscribe_burst,
        hooks=hooks,
        forwarded_headers=settings.forwarded_headers,
    )


def api(
    settings: Settings,
    node: Node,
    authenticator: Authenticator | None,
    hooks: HookProxy | None = None,
) -> PublishApi | None:
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
        hooks=hooks,
        forwarded_headers=settings.forwarded_headers,
        dashboard_port=settings.port,
    )


def server(settings: Settings, handler: WebSocketHandler) -> WebSocketServer:
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
