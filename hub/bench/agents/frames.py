"""Frames on the controller-agent TCP connection: a 4-byte big-endian length, then one JSON
object (``codec.py``). Blocking sockets: both ends run a thread per direction, and the
coordinator itself is synchronous."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from hub.bench.agents.codec import CodecError, dumps, loads

__all__ = ["MAX_FRAME", "Channel", "ChannelClosed"]

#: The largest frame either end takes: a run's config with its payload file, or a script.
MAX_FRAME = 16 << 20
_LENGTH = struct.Struct(">I")


class ChannelClosed(ConnectionError):
    """The peer closed the connection, sent a bad frame, or said nothing in time; the message
    says which, without the peer's name (the caller knows it)."""


class Channel:
    """One connection, as frames; ``send`` may be called from several threads."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self._send_lock = threading.Lock()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, frame: dict[str, Any]) -> None:
        body = dumps(frame)
        with self._send_lock:
            try:
                self.sock.sendall(_LENGTH.pack(len(body)) + body)
            except OSError as exc:
                raise ChannelClosed(str(exc)) from None

    def recv(self, timeout_s: float | None) -> dict[str, Any]:
        """The next frame; ChannelClosed at EOF, on a bad frame, or after ``timeout_s`` of
        silence (None: wait for ever)."""
        self.sock.settimeout(timeout_s)
        try:
            (length,) = _LENGTH.unpack(self._exactly(_LENGTH.size))
            if length > MAX_FRAME:
                raise ChannelClosed(f"a frame of {length} bytes passes {MAX_FRAME}")
            return loads(self._exactly(length))
        except ChannelClosed:
            raise
        except TimeoutError:
            raise ChannelClosed(f"silent for {timeout_s:g} s") from None
        except CodecError as exc:
            raise ChannelClosed(f"bad frame: {exc}") from None
        except OSError as exc:
            raise ChannelClosed(str(exc)) from None

    def _exactly(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise ChannelClosed("connection closed")
            chunks += chunk
        return bytes(chunks)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
