"""Keepalive pings for every connection of a server, from ONE task.

websockets runs a keepalive task per connection; with tens of thousands of idle sockets those
tasks are a large share of each connection's memory. One task does the same work, in ticks: each
interval is cut into ``_SLICES`` ticks, and each tick pings the connections of one slice, so
the pings of 10,000 connections, and their 10,000 pongs, never arrive as one burst that holds
up fan-out for everyone (measured in the lab: up to 0.5 s of added delivery latency every
interval, on a loaded machine, when the whole server was swept at once).
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import Server, ServerConnection
from websockets.protocol import State

from hub.ws.connection import HubConnection

__all__ = ["run_keepalive"]

logger = logging.getLogger(__name__)

#: Connections handled between two yields to the event loop, so a sweep never stalls fan-out.
_CHUNK = 500
#: Ticks per interval: each connection is still pinged once per interval, a slice at a time.
_SLICES = 10
#: The least lateness of a sweep that is taken for the process's own deafness, not a busy loop.
_DEAF_S = 1.0


async def run_keepalive(server: Server, *, interval_s: float, timeout_s: float) -> None:
    """Every ``interval_s``, ping each open connection; cut off those whose previous ping has
    had no pong for ``timeout_s`` (a peer that vanished without closing its socket).

    A tick that wakes well after it was due (a third of the shorter of the two, at least
    1 s) means this process was deaf itself (its host froze, SIGSTOP, or the machine starved
    it): the pongs its clients sent meanwhile may still wait unread in the kernel, so that
    tick judges no one. It logs the silence and leaves the judging to the next ticks, once
    what arrived has been read."""
    loop = asyncio.get_running_loop()
    deaf_after_s = max(_DEAF_S, min(interval_s, timeout_s) / 3)
    tick_s = interval_s / _SLICES
    due = loop.time() + tick_s
    slice_ = 0
    slices: list[list[ServerConnection]] = []
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        late_s, due = now - due, now + tick_s
        if late_s > deaf_after_s:
            logger.warning(
                "the keepalive sweep ran %.1f s late: this process was frozen or starved, so "
                "it heard nothing meanwhile; no connection is cut off for it in this sweep",
                late_s,
            )
            continue
        num_dead = 0
        if slice_ == 0:
            # One pass over the connections per interval, not one per tick: at 16,000
            # connections a worker, building each tick's slice from all of them was ~3% of
            # the worker's CPU. A connection opened since waits for the next interval.
            connections = list(server.connections)
            slices = [connections[i::_SLICES] for i in range(_SLICES)]
        this_slice, slices[slice_] = slices[slice_], []  # held no longer than its tick
        slice_ = (slice_ + 1) % _SLICES
        for i, ws in enumerate(this_slice):
            if i % _CHUNK == _CHUNK - 1:
                await asyncio.sleep(0)
            if ws.protocol.state is not State.OPEN:
                continue
            assert isinstance(ws, HubConnection)
            if not ws.ping_or_abort(now, timeout_s):
                num_dead += 1
        if num_dead:
            logger.info("closed %d connections that did not answer a keepalive ping", num_dead)
