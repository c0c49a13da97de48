"""The WebSocket listener of one worker: websockets' ``serve`` with hub's connection class,
the plain-HTTP endpoints of the same port, and the one keepalive task."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hub.core.protocol import SUBPROTOCOL
from hub.ws.connection import HubConnection
from hub.ws.dashboard import add_dashboard_routes
from hub.ws.handler import WebSocketHandler, select_subprotocol
from hub.ws.keepalive import run_keepalive
from hub.ws.routes import Routes, text_response

__all__ = ["CLOSE_TIMEOUT_S", "WebSocketServer", "add_health_routes"]

logger = logging.getLogger(__name__)

#: How long shutdown waits for clients to answer the 1001 close before cutting them off.
CLOSE_TIMEOUT_S = 2.0


def add_health_routes(
    routes: Routes,
    *,
    not_ready: Callable[[], str | None],
    metrics: Callable[[], tuple[bytes, str]],
    stats: Callable[[], dict[str, Any]],
) -> None:
    """/healthz, /readyz, /metrics and the dashboard on the WebSocket port; ``not_ready`` says
    why /readyz answers 503, or None when it answers 200."""

    def healthz(connection: ServerConnection, request: Request) -> Response:
        return text_response(200, "ok\n")

    def readyz(connection: ServerConnection, request: Request) -> Response:
        reason = not_ready()  # None: ready
        if reason is None:
            return text_response(200, "ready\n")
        return text_response(503, f"not ready: {reason}\n")

    def metrics_route(connection: ServerConnection, request: Request) -> Response:
        body, content_type = metrics()
        return text_response(200, body.decode(), content_type)

    routes.add("/healthz", healthz)
    routes.add("/readyz", readyz)
    routes.add("/metrics", metrics_route, admin=True)
    add_dashboard_routes(routes, stats=stats)


class WebSocketServer:
    """One worker's listener: serves ``handler`` until ``stop``."""

    def __init__(
        self,
        handler: WebSocketHandler,
        *,
        compression: bool,
        max_message_bytes: int,
        ping_interval_s: float,
        ping_timeout_s: float,
        max_buffered_bytes: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.max_buffered_bytes = max_buffered_bytes
        self.compression = compression
        self.max_message_bytes = max_message_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self._server: Server | None = None
        self._keepalive: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        HubConnection.max_write_buffer_bytes = self.max_buffered_bytes
        self._server = await serve(
            self.handler,
            host,
            port,
            process_request=self.handler.process_request,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            select_subprotocol=select_subprotocol,
            compression="deflate" if self.compression else None,
            max_size=self.max_message_bytes,
            ping_interval=None,  # see hub.ws.keepalive: one task for all connections
            close_timeout=CLOSE_TIMEOUT_S,
            reuse_port=reuse_port,
            backlog=4096,
            ssl=self.ssl_context,
            create_connection=HubConnection,
        )
        if self.ping_interval_s > 0:
            self._keepalive = asyncio.create_task(
                run_keepalive(
                    self._server, interval_s=self.ping_interval_s, timeout_s=self.ping_timeout_s
                )
            )

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and stop listening."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S + 2)
            except TimeoutError:
                logger.warning("some connections did not close in time")
