"""One hub.v1 connection's inbound frames, served one at a time and in order, by a task that
exists only while some are waiting.

An idle connection has no task, no coroutine and no queue: the connection hands each frame
here (``HubConnection.listen``), and the first one starts a task that serves it and any that
arrive meanwhile, then ends. Reading pauses while too many wait, as websockets' own queue
would do.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from hub.core.errors import CloseCode
from hub.ws.connection import HubConnection

__all__ = ["MAX_WAITING", "Inbox"]

logger = logging.getLogger(__name__)

#: Frames waiting past which the connection stops reading (websockets' default max_queue);
#: it reads again once no more than a quarter of that wait.
MAX_WAITING = 16


class Server(Protocol):
    async def serve(self, payload: bytes, kind: int) -> None: ...


class Inbox:
    """Serves a connection's frames with ``server.serve(payload, kind)``, one after the
    other. The inbox is the connection's message callback itself (no bound method each)."""

    __slots__ = ("_frames", "_paused", "_server", "_task", "_ws")

    def __init__(self, ws: HubConnection, server: Server) -> None:
        self._ws = ws
        self._server = server
        self._frames: collections.deque[tuple[bytes, int]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False

    def start(self, first: Coroutine[Any, Any, None] | None = None) -> None:
        """Take the connection's frames from now on; ``first`` runs before any of them."""
        self._ws.listen(self)
        if first is not None:
            self._frames = collections.deque()
            self._task = asyncio.create_task(self._run(first))

    def __call__(self, payload: bytes, kind: int) -> None:
        frames = self._frames
        if frames is None:
            self._frames = collections.deque(((payload, kind),))
            self._task = asyncio.create_task(self._run(None))
            return
        frames.append((payload, kind))
        if len(frames) >= MAX_WAITING and not self._paused:
            self._paused = True
            self._ws.transport.pause_reading()

    async def finish(self) -> None:
        """Wait for the frame being served, if any (the connection is ending)."""
        task = self._task
        if task is not None:
            await asyncio.wait((task,))

    async def _run(self, first: Coroutine[Any, Any, None] | None) -> None:
        frames = self._frames
        assert frames is not None
        ws = self._ws
        try:
            if first is not None:
                await first
            while frames and ws.protocol.state is not State.CLOSED:
                payload, kind = frames.popleft()
                if self._paused and len(frames) <= MAX_WAITING // 4:
                    self._resume()
                await self._server.serve(payload, kind)
        except ConnectionClosed as exc:  # an ordinary end: a reset, the client's close
            logger.debug("hub.v1 connection ended: %s", exc)
        except Exception:
            logger.exception("a hub.v1 request failed; closing its connection")
            ws.close_soon(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            # No await from the last check of ``frames`` to here: a frame that comes later
            # starts a task of its own.
            self._frames = None
            self._task = None
            if self._paused:
                self._resume()

    def _resume(self) -> None:
        self._paused = False
        transport = self._ws.transport
        if not transport.is_closing():
            transport.resume_reading()
