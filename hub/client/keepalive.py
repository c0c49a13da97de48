"""The client's own keepalive: a WebSocket ping every ``interval_s``; a pong missing for
``timeout_s`` abandons the connection at once.

websockets' built-in keepalive, on a missing pong, sends a close frame and then waits up to
its close timeout (10 s) for a closing handshake that a silent peer never answers. A hub
behind a dropped link or on a frozen host is silent, so that wait would be pure delay: this
loop aborts the socket instead, with an RST (SO_LINGER 0), so the kernel drops what it still
holds for that hub rather than retransmitting it for minutes, and a hub that comes back
learns at its first packet that the connection is gone. Detection takes between
``timeout_s`` and ``interval_s + timeout_s`` after the link went silent.

A late pong is no sign of a silent hub when the client itself stopped reading (the
application is behind, and the subscriptions' buffers are bounded: the hub's own
``--max-buffered-bytes`` bounds that case), nor while frames still arrive (a backlog ahead of
the pong): the connection is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["abandon", "keep_alive"]


def abandon(ws: ClientConnection) -> None:
    """Drop the connection without a closing handshake: an RST, not a FIN."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def keep_alive(
    ws: ClientConnection,
    *,
    interval_s: float,
    timeout_s: float,
    heard_at: Callable[[], float] = lambda: float("-inf"),
) -> bool:
    """Ping until the connection closes (False) or a pong is overdue (True: abandoned).

    ``heard_at`` is the loop time of the last frame read from the hub: one within the last
    ``timeout_s`` proves the link alive even while the pong still waits behind a backlog."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            # The send itself is inside the bound: on a silent link with a full send buffer,
            # websockets' ping() waits for the buffer to drain, which it never does.
            async with asyncio.timeout(timeout_s):
                await (await ws.ping())
        except TimeoutError:
            if not ws.transport.is_reading():
                # The application is behind and the client stopped reading the socket: the
                # pong may be there, unread. Our own pause says nothing about the hub.
                continue
            if loop.time() - heard_at() < timeout_s:
                continue  # frames are still arriving: the pong is behind them
            abandon(ws)
            return True
        except ConnectionClosed:
            return False
