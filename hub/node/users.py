"""Users: who each connection is, and the server API's commands that act on a user's
connections on every instance (``POST /api/disconnect``, ``/api/unsubscribe``,
``/api/subscribe``, ``GET /api/users/<user>``, ``GET /api/info``).

A connection's user is its JWT's ``sub`` (or what a connect hook said), or None. The index
(user → that user's local connections, and their transport) is kept when a connection opens
and closes (``connected``, ``disconnected``); anonymous connections are only counted. It is
never read on the fan-out path.

A command goes out on the control channel (``hub.node.control``); each instance runs it on
its own connections of the user (``handle``) and answers with the number it reached.
A server-side subscribe goes through the node's one join routine (``prepare_join`` then
``commit``), so a history channel gets its position, and the client is told with a
``subscribed`` frame (``hub.core.replies.subscribed_frame``) written by the commit, before
any live message of the channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from hub.core.errors import BrokerUnavailable, CloseCode
from hub.core.replies import subscribed_frame, unsubscribed_frame
from hub.core.sequence import Position
from hub.node.control import Command, Replies
from hub.node.state import Member

__all__ = ["RAW", "SSE", "V1", "Join", "Users"]

logger = logging.getLogger(__name__)

#: A connection's transport, as ``connected`` is told and ``/api/users`` shows it. Only hub.v1
#: connections can be told of a server-side subscription; the others hold one channel.
V1: Final = "hub.v1"
RAW: Final = "raw"
SSE: Final = "sse"


class Join(Protocol):
    """A prepared join (``hub.node.node.Joining``), as far as a server-side subscribe uses it."""

    @property
    def positions(self) -> dict[str, tuple[Position, bool | None]]: ...

    def commit(self, reply: bytes | None) -> None: ...

    def abort(self) -> None: ...


class Users:
    """The user → connections index of this process, and the user commands."""

    def __init__(
        self,
        *,
        request: Callable[[Command], Awaitable[Replies]],
        prepare_join: Callable[[Member, Sequence[str]], Awaitable[Join]],
        leave: Callable[[str, Member], None],
        client_id: Callable[[Member], str],
        stats: Callable[[], Command],
    ) -> None:
        self._request = request
        self._prepare_join = prepare_join
        self._leave = leave
        self._client_id = client_id
        self._stats = stats
        self._by_user: dict[str, dict[Member, str]] = {}
        #: Open connections of this process, anonymous ones included.
        self.num_connections = 0

    # The index

    def connected(self, member: Member, transport: str) -> None:
        """A connection opened; call it once ``member.user`` is final."""
        self.num_connections += 1
        if member.user is not None:
            self._by_user.setdefault(member.user, {})[member] = transport

    def disconnected(self, member: Member) -> None:
        self.num_connections -= 1
        if member.user is None:
            return
        members = self._by_user.get(member.user)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._by_user[member.user]

    def local(self, user: str) -> dict[Member, str]:
        """This process's connections of ``user``, with their transports."""
        return self._by_user.get(user, {})

    @property
    def num_users(self) -> int:
        return len(self._by_user)

    # On every instance (the server API)

    async def disconnect(self, user: str, code: int, reason: str) -> Replies:
        command: Command = {"op": "disconnect", "user": user, "code": code, "reason": reason}
        return await self._request(command)

    async def unsubscribe(self, user: str, channel: str) -> Replies:
        return await self._request({"op": "unsubscribe", "user": user, "channel": channel})

    async def subscribe(self, user: str, channel: str) -> Replies:
        return await self._request({"op": "subscribe", "user": user, "channel": channel})

    async def connections(self, user: str) -> Replies:
        return await self._request({"op": "connections", "user": user})

    async def info(self) -> Replies:
        return await self._request({"op": "info"})

    # Here (the control channel's handler)

    async def handle(self, command: Command) -> Command:
        """Carry out a command on this process's connections; the reply's fields."""
        op, user = command.get("op"), command.get("user")
        if op == "info":
            return self._stats()
        if not isinstance(user, str):
            return {"count": 0, "error": "no user"}
        members = dict(self.local(user))
        channel = command.get("channel")
        if op == "disconnect":
            code = command.get("code")
            reason = command.get("reason")
            for member in members:
                member.disconnect(
                    code if isinstance(code, int) else CloseCode.DISCONNECTED,
                    reason if isinstance(reason, str) else "disconnected by the server",
                )
            return {"count": len(members)}
        if op == "connections":
            return {
                "count": len(members),
                "connections": [
                    {
                        "client": self._client_id(m),
                        "transport": transport,
                        "channels": sorted(m.channels),
                    }
                    for m, transport in members.items()
                ],
            }
        if op == "unsubscribe" and isinstance(channel, str):
            return {"count": self._unsubscribe_here(members, channel)}
        if op == "subscribe" and isinstance(channel, str):
            reached = await asyncio.gather(
                *(self._subscribe_here(m, channel) for m, t in members.items() if t == V1)
            )
            return {"count": sum(reached)}
        return {"count": 0, "error": f"unknown op {op!r}"}

    def _unsubscribe_here(self, members: dict[Member, str], channel: str) -> int:
        count = 0
        for member, transport in members.items():
            if channel not in member.channels:
                continue
            count += 1
            self._leave(channel, member)
            if transport == V1:
                member.write_now(unsubscribed_frame(channel).encode(), [])
            else:
                # One channel per raw connection or SSE stream: without it, it has no use.
                member.disconnect(CloseCode.DISCONNECTED, "unsubscribed by the server")
        return count

    async def _subscribe_here(self, member: Member, channel: str) -> bool:
        """Join ``member`` to ``channel`` and tell it; True when it is subscribed after."""
        if channel in member.channels:
            return True
        try:
            joining = await self._prepare_join(member, [channel])
        except BrokerUnavailable as exc:
            logger.warning("a server-side subscribe to %s failed here: %s", channel, exc)
            return False
        if member.user is None or member not in self.local(member.user):
            joining.abort()  # it closed meanwhile: never add a closed connection
            return False
        if channel in member.channels:
            joining.abort()  # the client subscribed meanwhile, and was told by its ack
            return True
        joining.commit(subscribed_frame([channel], joining.positions).encode())
        return True
