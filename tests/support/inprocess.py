"""One hub worker's WebSocket side in the test's own event loop: a node on the memory broker
(or one given), the handler and the server on a free loopback port. Faster than a process,
and the test can reach into the node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from hub.brokers.memory import MemoryBroker
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.node import Node
from hub.ws.handler import WebSocketHandler
from hub.ws.routes import Routes
from hub.ws.server import WebSocketServer

__all__ = ["Served", "serving"]


@dataclass
class Served:
    node: Node
    handler: WebSocketHandler
    server: WebSocketServer

    def url(self, path: str = "") -> str:
        return f"ws://127.0.0.1:{self.server.port}/{path}"


@asynccontextmanager
async def serving(
    *,
    rules: ChannelRules | None = None,
    broker: Any = None,
    presence: Any = None,
    compression: bool = False,
    max_buffered_bytes: int = 1 << 22,
    **handler_options: Any,
) -> AsyncIterator[Served]:
    node = Node(
        broker=broker or MemoryBroker(),
        presence=presence,
        max_buffered_bytes=max_buffered_bytes,
        rules=rules or ChannelRules((), ChannelOptions()),
        unsubscribe_delay_s=0.05,
    )
    await node.start()
    handler = WebSocketHandler(node=node, routes=Routes(), **handler_options)
    server = WebSocketServer(
        handler,
        compression=compression,
        max_message_bytes=1 << 20,
        ping_interval_s=0,
        ping_timeout_s=0,
        max_buffered_bytes=max_buffered_bytes,
    )
    await server.start("127.0.0.1", 0)
    try:
        yield Served(node, handler, server)
    finally:
        await server.stop()
        await node.close()
