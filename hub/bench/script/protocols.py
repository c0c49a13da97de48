"""The protocols a VU may speak (``vu.connect(..., protocol=)``): raw (``conn.py``), hub.v1
and Socket.IO, each a codec (what a frame means) and a connection class (what the script
may do with it). Socket.IO's handshake and pings are ``protocols/socketio.py``'s, the same
as the scenarios speak.

- hub.v1 frames arrive as dicts (``{"type": "message", "channel": ..., "data": ...}``);
  acks are consumed by the request that waits for them.
- Socket.IO events arrive as :class:`SioEvent` (``.name``, ``.args``, ``.data``); acks are
  consumed by ``call``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, NamedTuple

from hub.bench.protocols.socketio import SocketIO
from hub.bench.script.conn import PROTOCOL, Codec, Conn, ScriptSocket
from hub.bench.wire import OP_TEXT

__all__ = ["CODECS", "HubV1Conn", "HubV1Error", "SioEvent", "SocketIOConn", "codec_for"]


class HubV1Error(RuntimeError):
    """hub.v1 answered a request with an error frame."""


def _fail_all(pending: dict[int, asyncio.Future[Any]], reason: str) -> None:
    for waiter in pending.values():
        if not waiter.done():
            waiter.set_exception(ConnectionResetError(reason))
    pending.clear()


class HubV1Codec(Codec):
    name = "hub.v1"
    subprotocol = "hub.v1"

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: Each history channel's last position: what a reconnect recovers from.
        self.positions: dict[str, dict[str, Any]] = {}

    def closed(self) -> None:
        _fail_all(self.pending, "hub.v1: the connection closed before the reply")

    def decode(self, sock: ScriptSocket, payload: bytes) -> object:
        try:
            frame = json.loads(payload)
        except ValueError:
            return super().decode(sock, payload)
        if not isinstance(frame, dict):
            return frame
        kind = frame.get("type")
        if kind == "message" and "offset" in frame:
            position = self.positions.get(frame.get("channel", ""))
            if position is not None:
                position["offset"] = frame["offset"]
        waiter = self.pending.pop(frame["id"], None) if isinstance(frame.get("id"), int) else None
        if kind in ("ack", "error") and waiter is not None:
            if not waiter.done():
                waiter.set_result(frame)
            return PROTOCOL
        if kind == "ack":
            return PROTOCOL  # of a request nobody waits for (a publish)
        return frame


class HubV1Conn(Conn):
    """A hub.v1 connection: ``subscribe`` (with recovery), ``publish``, any ``request``."""

    _ids = itertools.count(1)

    @property
    def codec(self) -> HubV1Codec:
        codec = self.sock.codec
        assert isinstance(codec, HubV1Codec)
        return codec

    @property
    def positions(self) -> dict[str, dict[str, Any]]:
        """Each history channel's last position, for ``subscribe(..., recover=...)``."""
        return self.codec.positions

    async def request(self, op: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Send a request and wait for its ack; an error frame raises HubV1Error."""
        request_id = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self.codec.pending[request_id] = waiter
        self.send(op | {"id": request_id})
        try:
            reply: dict[str, Any] = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"hub.v1 {op.get('op')}: no reply within {timeout:g}s") from None
        finally:
            self.codec.pending.pop(request_id, None)
        if reply.get("type") == "error":
            raise HubV1Error(f"hub.v1 {op.get('op')}: {reply.get('code')}: {reply.get('message')}")
        return reply

    async def subscribe(
        self,
        channel: str,
        recover: dict[str, Any] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Subscribe; with ``recover`` (``conn.positions`` of an earlier connection), what was
        missed follows the ack. Returns the ack (``ack["positions"][channel]["recovered"]``)."""
        op: dict[str, Any] = {"op": "subscribe", "channel": channel}
        if recover:
            op["recover"] = {c: p for c, p in recover.items() if c == channel} or None
            if op["recover"] is None:
                del op["recover"]
        ack = await self.request(op, timeout)
        for name, position in (ack.get("positions") or {}).items():
            self.codec.positions[name] = {"epoch": position["epoch"], "offset": position["offset"]}
        return ack

    def publish(self, channel: str, data: object) -> None:
        """Publish ``data`` (any JSON value) to ``channel``; its ack is not waited for."""
        self.send({"op": "publish", "channel": channel, "data": data})


class SioEvent(NamedTuple):
    """A Socket.IO event: its name and arguments."""

    name: str
    args: tuple[Any, ...]

    @property
    def data(self) -> Any:
        """The first argument (most events have one), or None."""
        return self.args[0] if self.args else None


class SocketIOCodec(Codec):
    name = "socketio"
    default_path = SocketIO.default_path

    def __init__(self) -> None:
        self.engine = SocketIO()
        self.pending: dict[int, asyncio.Future[tuple[Any, ...]]] = {}

    def opened(self, sock: ScriptSocket) -> None:
        sock.joined = asyncio.get_running_loop().create_future()

    def closed(self) -> None:
        _fail_all(self.pending, "Socket.IO: the connection closed before the ack")

    def decode(self, sock: ScriptSocket, payload: bytes) -> object:
        if payload.startswith(b"42"):
            try:
                name, *args = json.loads(payload[2:])
            except (ValueError, TypeError):
                return super().decode(sock, payload)
            return SioEvent(str(name), tuple(args))
        if payload.startswith(b"43"):
            digits = payload[2:].split(b"[", 1)
            waiter = self.pending.pop(int(digits[0]), None) if digits[0].isdigit() else None
            if waiter is not None and not waiter.done() and len(digits) == 2:
                waiter.set_result(tuple(json.loads(b"[" + digits[1])))
            return PROTOCOL
        seen = self.engine.read(payload, "")
        for opcode, data in seen.replies:
            sock.write_frame(opcode, data)
        if seen.error is not None:
            sock.fail_join(seen.error)
        elif seen.joined and sock.joined is not None and not sock.joined.done():
            sock.joined.set_result(None)
        return super().decode(sock, payload) if seen.other else PROTOCOL

    def encode(self, data: object) -> tuple[int, bytes]:
        return OP_TEXT, b"42" + json.dumps(["message", data], separators=(",", ":")).encode()


class SocketIOConn(Conn):
    """A Socket.IO connection, connected to the main namespace: ``emit``, ``call`` (an emit
    that waits for the server's ack) and ``expect``, whose frames are :class:`SioEvent`."""

    _ids = itertools.count(1)

    def emit(self, event: str, *args: Any) -> None:
        self.write(OP_TEXT, b"42" + json.dumps([event, *args], separators=(",", ":")).encode())

    async def call(self, event: str, *args: Any, timeout: float = 5.0) -> tuple[Any, ...]:  # noqa: ASYNC109
        """Emit with an ack id and return the ack's arguments."""
        codec = self.sock.codec
        assert isinstance(codec, SocketIOCodec)
        ack_id = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        codec.pending[ack_id] = waiter
        packet = json.dumps([event, *args], separators=(",", ":")).encode()
        self.write(OP_TEXT, b"42%d" % ack_id + packet)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"Socket.IO {event!r}: no ack within {timeout:g}s") from None
        finally:
            codec.pending.pop(ack_id, None)

    async def expect_event(
        self,
        name: str,
        predicate: Any = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SioEvent | None:
        """The next ``name`` event (for which ``predicate(event)`` is true, if given)."""
        result: SioEvent | None = await self.expect(
            lambda e: (
                isinstance(e, SioEvent) and e.name == name and (predicate is None or predicate(e))
            ),
            timeout,
        )
        return result


CODECS: dict[str, tuple[type[Codec], type[Conn]]] = {
    "raw": (Codec, Conn),
    "hub.v1": (HubV1Codec, HubV1Conn),
    "socketio": (SocketIOCodec, SocketIOConn),
}


def codec_for(protocol: str) -> tuple[Codec, type[Conn]]:
    """A fresh codec for one connection, and its connection class."""
    try:
        codec_class, conn_class = CODECS[protocol]
    except KeyError:
        raise ValueError(
            f"vu.connect(protocol={protocol!r}): use one of {', '.join(CODECS)}"
        ) from None
    return codec_class(), conn_class
