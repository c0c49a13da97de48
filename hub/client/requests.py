"""The client's request and ack bookkeeping, and what the hub's frames do to subscriptions.

Every request carries an id; the hub's ack or error frame with that id settles it: a
publish's future, or a subscription (whose ack carries its position, and may say the hub
could not recover). Message and gap frames go to their subscription's buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub.client.errors import Gap, NotRecovered, PublishFailed, RequestRefused
from hub.client.message import Frame, message_from_frame
from hub.client.subscription import End, Subscription, ack_position
from hub.core.errors import CloseCode
from hub.core.jsontext import dump_json
from hub.core.protocol import UNAVAILABLE
from hub.core.sequence import Position

__all__ = ["Requests", "SessionInfo"]

logger = logging.getLogger(__name__)

#: Why the unacknowledged requests failed, by close code (others: the connection closed).
_CLOSE_REASONS: dict[int, str] = {
    CloseCode.MESSAGE_TOO_BIG: "the hub closed the connection: a frame was too big (1009)",
    CloseCode.POLICY_VIOLATION: "the hub refused a frame (1008)",
}


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the backend's connect hook said of this connection (its first frame)."""

    user: str | None
    data: object
    expire_at: float | None


class Requests:
    """Mixed into Client: requests by id, and the frames that answer them or feed a
    subscription."""

    _subs: dict[str, Subscription]
    #: The connect hook's answer for the current connection; None without one.
    session: SessionInfo | None
    _pending: dict[int, tuple[asyncio.Future[Frame], Subscription | None]]
    _next_id: int
    _ws: ClientConnection | None
    _retries: set[asyncio.Task[None]]
    _backoff_initial_s: float
    _backoff_max_s: float
    _queue_size: int

    if TYPE_CHECKING:

        @property
        def is_connected(self) -> bool: ...

        def _announce(self, sub: Subscription) -> None: ...

    def _request(
        self, body: Frame, sub: Subscription | None
    ) -> tuple[int, asyncio.Future[Frame], str]:
        """A new request: its id, the future its answer settles, and the frame to send."""
        self._next_id += 1
        request_id = body["id"] = self._next_id
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, sub)
        return request_id, future, dump_json(body).decode()

    async def _send_subscribe(self, ws: ClientConnection, sub: Subscription) -> None:
        if sub._sent_on is ws:
            return
        sub._sent_on = ws
        if sub.server:
            return  # the server's to make again, not ours
        body: Frame = {"op": "subscribe", "channel": sub.channel}
        if sub.recover and sub.position is not None:
            position = {"epoch": sub.position.epoch, "offset": sub.position.offset}
            body["recover"] = {sub.channel: position}
        _, _, frame = self._request(body, sub)
        await ws.send(frame)

    def _fail_requests(self, error: BaseException) -> None:
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()
        self._pending.clear()

    def _fail_pending(self, code: int) -> None:
        """The connection closed with ``code``: no pending request will be answered."""
        why = _CLOSE_REASONS.get(
            code, f"the connection closed ({code}) before the hub acknowledged it"
        )
        self._fail_requests(PublishFailed(why))

    async def _dispatch(self, frame: Frame) -> bool:
        """Act on one frame; True when it acknowledged something (the hub is useful)."""
        kind = frame.get("type")
        if kind == "message":
            sub = self._subs.get(str(frame["channel"]))
            if sub is not None:
                await self._deliver(sub, frame)
            return False
        if kind == "gap":
            sub = self._subs.get(str(frame["channel"]))
            if sub is not None:
                sub.position = Position(str(frame["epoch"]), _to_int(frame["offset"]))
                await sub._buffer.put(Gap(sub.channel, sub.position.epoch, sub.position.offset))
            return False
        if kind in ("ack", "error", "history", "presence", "rpc"):
            request_id = frame.get("id")
            entry = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
            if entry is None:
                if kind == "error":
                    logger.warning("hub.client: the hub answered %s", frame)
                return kind != "error"
            future, sub = entry
            if sub is not None:
                await self._on_subscribe_reply(sub, frame)
            elif not future.done():
                future.set_result(frame)
            return kind != "error"
        if kind == "connected":
            # The backend's connect hook let this connection in: who it is, and its data.
            expire_at, user = frame.get("expire_at"), frame.get("user")
            self.session = SessionInfo(
                user=user if isinstance(user, str) else None,
                data=frame.get("data"),
                expire_at=float(expire_at) if isinstance(expire_at, int | float) else None,
            )
            return False
        if kind == "subscribed" and frame.get("server") is True:
            await self._on_server_subscribed(frame)
            return False
        if kind == "unsubscribed" and frame.get("server") is True:
            sub = self._subs.pop(str(frame["channel"]), None)
            if sub is not None:
                sub._finish(End())
            return False
        return False  # join/leave and later frame types: nothing to do

    async def _on_server_subscribed(self, frame: Frame) -> None:
        """The server subscribed this connection (``POST /api/subscribe``, a connect hook):
        each channel becomes a server-side Subscription, announced once; one that outlived a
        reconnect goes on, and says NotRecovered when messages were published meanwhile."""
        channels = frame.get("channels")
        if not isinstance(channels, list):
            raise TypeError(f"'channels' is not a list: {channels!r}")
        for channel in map(str, channels):
            sub = self._subs.get(channel)
            if sub is not None and not sub.server:
                continue  # ours already: the hub adds nothing to it
            ack = ack_position(frame, channel)
            if sub is None:
                sub = Subscription(
                    channel, recover=False, since=None, size=self._queue_size, server=True
                )
                sub._sent_on = self._ws
                sub._ready.set_result(None)
                self._subs[channel] = sub
                if ack is not None:
                    sub.position = ack[0]
                self._announce(sub)
                continue
            if ack is not None:
                top, held = ack[0], sub.position
                if held is not None and (held.epoch != top.epoch or held.offset < top.offset):
                    await sub._buffer.put(NotRecovered(channel, top.epoch, top.offset))
                sub.position = top

    async def _deliver(self, sub: Subscription, frame: Frame) -> None:
        position = sub.position
        offset = frame.get("offset", 0)
        if offset and position is not None:
            if not isinstance(offset, int):
                raise TypeError(f"an offset that is not an integer: {offset!r}")
            if offset <= position.offset:
                return  # already delivered: a replay that overlaps what came live
            sub.position = Position(position.epoch, offset)
        await sub._buffer.put(message_from_frame(frame, position.epoch if position else ""))

    async def _on_subscribe_reply(self, sub: Subscription, frame: Frame) -> None:
        if self._subs.get(sub.channel) is not sub:
            return  # unsubscribed meanwhile
        if frame.get("type") == "error":
            refused = RequestRefused(str(frame.get("code")), str(frame.get("message")))
            if refused.code == UNAVAILABLE:  # Redis cannot answer the history read right now
                sub._sent_on = None
                self._retry_later(sub)
                return
            del self._subs[sub.channel]
            sub._finish(refused)
            return
        asked = sub.recover and sub.position is not None
        ack = ack_position(frame, sub.channel)
        if ack is not None:
            top, recovered = ack
            if not asked:
                sub.position = top
            elif not recovered:
                sub.position = top
                await sub._buffer.put(NotRecovered(sub.channel, top.epoch, top.offset))
        if not sub._ready.done():
            sub._ready.set_result(None)

    def _retry_later(self, sub: Subscription) -> None:
        """Send ``sub``'s subscribe again on this connection after a pause (a later
        connection sends it anyway)."""

        async def resend() -> None:
            await asyncio.sleep(self._backoff_max_s * random.random() + self._backoff_initial_s)
            ws = self._ws
            if ws is not None and self._subs.get(sub.channel) is sub and self.is_connected:
                with contextlib.suppress(ConnectionClosed):
                    await self._send_subscribe(ws, sub)

        task = asyncio.create_task(resend())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)


def _to_int(value: object) -> int:
    """``int(value)`` of a frame's field; TypeError or ValueError (a malformed frame)."""
    if not isinstance(value, int | float | str | bytes):
        raise TypeError(f"not a number: {value!r}")
    return int(value)
