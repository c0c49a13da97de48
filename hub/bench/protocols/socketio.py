"""``--protocol socketio``: Socket.IO v5 over Engine.IO v4, websocket transport only.

The wire (https://socket.io/docs/v4/socket-io-protocol/ and engine-io-protocol/): the server
opens with the Engine.IO open packet ``0{"sid":…,"pingInterval":…}``; the client connects to
the namespace with ``40`` and the server answers ``40{"sid":…}`` (or ``44{…}``: refused). The
server pings with ``2``, the client answers ``3``. A bench message is sent as a binary event,
``451-["EVENT",{"_placeholder":true,"num":0}]`` followed by one binary frame with the bytes, so
the header arrives untouched (no JSON, no base64) and the relayed binary frame is read by the
clients' fast path. ``--join-event NAME`` emits ``420["NAME","CHANNEL"]`` after the connect and
counts the socket as joined at its ack ``430…``: the usual way a server puts a socket in a
room.
"""

from __future__ import annotations

import json

from hub.bench.protocols.base import IGNORED, OP_TEXT, OTHER, Adapter, Framing, Seen

__all__ = ["SocketIO"]

_PONG = Seen(replies=((OP_TEXT, b"3"),))
_JOINED = Seen(joined=True)
_CONNECT = Seen(replies=((OP_TEXT, b"40"),))
_ENGINE_TYPES = (b"3", b"5", b"6")  # pong, upgrade, noop
JOIN_ACK_ID = 0


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class SocketIO(Adapter):
    name = "socketio"
    default_path = "/socket.io/?EIO=4&transport=websocket"

    def __init__(self, event: str = "message", join_event: str | None = None) -> None:
        self.event = event
        self.join_event = join_event
        placeholder = [event, {"_placeholder": True, "num": 0}]
        self._binary_event = b"451-" + _compact(placeholder)

    @property
    def joins_on_upgrade(self) -> bool:
        return False

    def waiting_for(self) -> str:
        if self.join_event:
            return (
                "the Socket.IO open packet '0{...}', connect '40' and the ack of "
                f"the {self.join_event!r} event"
            )
        return "the Socket.IO open packet '0{...}' and connect '40'"

    def framing(self, channel: str) -> Framing:
        return Framing(before=((OP_TEXT, self._binary_event),))

    def read(self, payload: bytes, channel: str) -> Seen:
        first = payload[:1]
        if first == b"2":  # Engine.IO ping: the pong carries the same payload ("2probe")
            return _PONG if len(payload) == 1 else Seen(replies=((OP_TEXT, b"3" + payload[1:]),))
        if first == b"0":
            return _CONNECT  # Engine.IO open: connect to the main namespace
        if first == b"1":
            return Seen(error="Socket.IO: the server closed the Engine.IO session")
        if first != b"4":
            return IGNORED if first in _ENGINE_TYPES else OTHER  # pong, noop, upgrade
        kind = payload[1:2]
        if kind == b"2" or kind == b"5":
            return IGNORED  # an event: a relayed message's placeholder, or not the bench's
        if kind == b"0":
            if not self.join_event:
                return _JOINED
            join = b"42%d" % JOIN_ACK_ID + _compact([self.join_event, channel])
            return Seen(replies=((OP_TEXT, join),))
        if kind == b"3" and self.join_event and payload[2:3] == b"%d" % JOIN_ACK_ID:
            return _JOINED
        if kind == b"4":
            reason = payload[2:200].decode(errors="replace")
            return Seen(error=f"Socket.IO connect refused: {reason}")
        if kind == b"1":
            return Seen(error="Socket.IO: the server disconnected the namespace")
        return IGNORED
