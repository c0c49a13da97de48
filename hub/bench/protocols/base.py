"""What a protocol adapter is: how a bench socket joins its channel once the WebSocket is
open, how a bench message is framed, and what an incoming frame that is not a bare bench
message means. Pure: an adapter is shared by all sockets of a process and holds no socket
state; the sockets (``sockets.py``) do the I/O.

Each protocol's decisions are made once: :meth:`Adapter.framing` is computed per channel when
a socket is built, and a message that starts with the bench header is read by the clients'
own fast path whatever the protocol, so only the protocol's other frames reach
:meth:`Adapter.read`.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

__all__ = [
    "IGNORED",
    "OP_BINARY",
    "OP_TEXT",
    "OTHER",
    "Adapter",
    "AdapterError",
    "Framing",
    "Out",
    "Seen",
]

OP_TEXT = 0x1
OP_BINARY = 0x2

Out = tuple[int, bytes]  # one frame to send: (WebSocket opcode, payload)


class AdapterError(ConnectionError):
    """The server did not speak the protocol: its message says what was expected."""


class Framing(NamedTuple):
    """How one bench message goes out on a channel: the frames ``before`` it (constant), then
    one binary frame of ``prefix`` + the message (header first, so it stays exact)."""

    before: tuple[Out, ...] = ()
    prefix: bytes = b""


class Seen(NamedTuple):
    """What an incoming frame meant."""

    replies: tuple[Out, ...] = ()  # frames to answer with (pongs, the next join step)
    joined: bool = False  # the socket is now on its channel: the run may count on it
    header: bytes | None = None  # a bench message inside the frame, header first
    error: str | None = None  # the server refused or broke the protocol
    #: Not the protocol's own frame, nor a bench message: counted in ``other_frames``.
    #: (The protocol's own frames are not counted as received frames at all.)
    other: bool = False


IGNORED = Seen()
OTHER = Seen(other=True)


class Adapter:
    """The raw protocol's answers; other protocols override what differs."""

    name: ClassVar[str] = "raw"
    #: The Sec-WebSocket-Protocol to ask for, when the user names none.
    subprotocol: ClassVar[str | None] = None
    #: The path (and query) a bare ``ws://HOST:PORT`` gets; empty: hub's raw layout.
    default_path: ClassVar[str] = ""

    @property
    def joins_on_upgrade(self) -> bool:
        """Whether a socket is on its channel as soon as the upgrade is done."""
        return True

    def waiting_for(self) -> str:
        """What the join waits for, for the error when it never comes."""
        return "the WebSocket upgrade"

    def hello(self, channel: str) -> tuple[Out, ...]:
        """Frames to send once the upgrade is done."""
        return ()

    def framing(self, channel: str) -> Framing:
        return Framing()

    def read(self, payload: bytes, channel: str) -> Seen:
        """A frame that does not start with a bench header."""
        return OTHER
