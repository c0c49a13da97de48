"""Keepalive pings for every connection of a server, from ONE task.

websockets runs a keepalive task per connection; with tens of thousands of idle sockets those
tasks are a large share of each connection's memory. One sweep per interval does the same work.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import Server
from websockets.protocol import State

from hub.ws.connection import HubConnection

__all__ = ["run_keepalive"]

logger = logging.getLogger(__name__)

#: Connections handled between two yields to the event loop, so a sweep never stalls fan-out.
_CHUNK = 500
#: The least lateness of a sweep that is taken for the process's own deafness, not a busy loop.
_DEAF_S = 1.0


async def run_keepalive(server: Server, *, interval_s: float, timeout_s: float) -> None:
    """Every ``interval_s``, ping each open connection; cut off those whose previous ping has
    had no pong for ``timeout_s`` (a peer that vanished without closing its socket).

    A sweep that wakes well after it was due (a third of the shorter of the two, at least
    1 s) means this process was deaf itself (its host froze, SIGSTOP, or the machine starved
    it): the pongs its clients sent meanwhile may still wait unread in the kernel, so that
    sweep judges no one. It logs the silence and leaves the judging to the next sweep, once
    what arrived has been read."""
    loop = asyncio.get_running_loop()
    deaf_after_s = max(_DEAF_S, min(interval_s, timeout_s) / 3)
    due = loop.time() + interval_s
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        late_s, due = now - due, now + interval_s
        if late_s > deaf_after_s:
            logger.warning(
                "the keepalive sweep ran %.1f s late: this process was frozen or starved, so "
                "it heard nothing meanwhile; no connection is cut off for it in this sweep",
                late_s,
            )
            continue
        num_dead = 0
        for i, ws in enumerate(list(server.connections)):
            if i % _CHUNK == _CHUNK - 1:
                await asyncio.sleep(0)
            if ws.protocol.state is not State.OPEN:
                continue
            assert isinstance(ws, HubConnection)
            if not ws.ping_or_abort(now, timeout_s):
                num_dead += 1
        if num_dead:
            logger.info("closed %d connections that did not answer a keepalive ping", num_dead)
