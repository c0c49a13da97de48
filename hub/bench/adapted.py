"""Bench sockets that speak a protocol adapter (``--protocol``, ``protocols/``): the same
receivers and publishers as ``sockets.py``, plus the adapter's join, its framing of each
message, and its answers (pongs) to the server.

A message that starts with the bench header (a raw or Socket.IO binary frame) still goes
through the clients' fast path; only the protocol's other frames come here. With ``--protocol
raw`` none of these classes is used: the choice is made once, when the sockets are built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar, Protocol

from picows import WSFrame, WSMsgType, WSTransport

from hub.bench import header as hdr
from hub.bench.lean import Counters
from hub.bench.protocols.base import OP_BINARY, Adapter, AdapterError, Framing
from hub.bench.sockets import BenchListener, LeanReceiver, PicowsReceiver, Publisher, Receiver
from hub.bench.stats import StreamTracker

__all__ = ["make_publisher", "make_receiver"]

#: The most of a fragmented message the lean client keeps for an adapter to read.
KEEP_BYTES = 1 << 20


class _SpeakingSlots(Protocol):
    adapter: Adapter
    channel: str
    framing: Framing
    join_waiter: asyncio.Future[None] | None


class _Speaking:
    """What an adapted socket adds; the slots live on the concrete classes (picows' base is an
    extension type)."""

    __slots__ = ()
    adapter: Adapter
    channel: str
    framing: Framing
    join_waiter: asyncio.Future[None] | None
    counters: Counters
    #: Whether the socket counts received frames (subscribers do, publishers do not).
    counts_frames: ClassVar[bool] = True
    write_frame: Callable[[int, bytes], None]
    on_message: Callable[[int, int, int, int], None]
    close: Callable[[], None]

    def _speak(self: _SpeakingSlots, adapter: Adapter, channel: str) -> None:
        self.adapter = adapter
        self.channel = channel
        self.framing = adapter.framing(channel)
        self.join_waiter = None

    def _opened(self) -> None:
        if not self.adapter.joins_on_upgrade:
            self._await_join()
        for opcode, payload in self.adapter.hello(self.channel):
            self.write_frame(opcode, payload)

    def _await_join(self: _SpeakingSlots) -> None:
        self.join_waiter = asyncio.get_running_loop().create_future()

    def send_bench(self, payload: bytes) -> None:
        framing = self.framing
        for opcode, data in framing.before:
            self.write_frame(opcode, data)
        self.write_frame(OP_BINARY, framing.prefix + payload)

    def on_other(self, payload: bytes) -> None:
        seen = self.adapter.read(payload, self.channel)
        for opcode, data in seen.replies:
            self.write_frame(opcode, data)
        counters = self.counters
        if seen.header is not None:
            self._bench_header(seen.header)
            return
        if seen.other:
            counters.other_frames += 1
            return
        if self.counts_frames:  # the protocol's own frame is not a received message
            counters.frames -= 1
            counters.bytes -= len(payload)
        waiter = self.join_waiter
        if seen.error is not None:
            if waiter is not None and not waiter.done():
                waiter.set_exception(AdapterError(seen.error))
            self.close()
        elif seen.joined and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _gone(self) -> None:
        """The socket closed: a join still waited for fails now, not at the timeout."""
        waiter = self.join_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                AdapterError(
                    f"--protocol {self.adapter.name}: the server closed the socket before "
                    f"{self.adapter.waiting_for()}"
                )
            )

    def _bench_header(self, head: bytes) -> None:
        counters = self.counters
        if len(head) < hdr.HEADER_SIZE:
            counters.other_frames += 1
            return
        magic, kind, _flags, run, pub_id, seq, sent_ns = hdr.HEADER.unpack_from(head)
        if magic != hdr.MAGIC:
            counters.other_frames += 1
        elif run == counters.run_id:
            self.on_message(kind, pub_id, seq, sent_ns)
        elif self.counts_frames:
            counters.foreign += 1


class AdaptedLeanReceiver(_Speaking, LeanReceiver):
    __slots__ = ("adapter", "channel", "framing", "join_waiter")
    keep = KEEP_BYTES

    def on_open(self) -> None:
        self._opened()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._gone()


class _SpeakingPicows(_Speaking, BenchListener):
    __slots__ = ()

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self._opened()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        super().on_ws_disconnected(transport)
        self._gone()


class AdaptedPicowsReceiver(_SpeakingPicows, PicowsReceiver):
    __slots__ = ("adapter", "channel", "framing", "join_waiter")


class AdaptedPublisher(_SpeakingPicows, Publisher):
    __slots__ = ("adapter", "channel", "framing", "join_waiter")
    counts_frames = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Its own messages come back like everyone's: the bench header, bare or wrapped.
        msg_type = frame.msg_type
        if msg_type is WSMsgType.BINARY or msg_type is WSMsgType.TEXT:
            if frame.payload_size >= hdr.HEADER_SIZE:
                head = hdr.HEADER.unpack_from(frame.get_payload_as_memoryview())
                if head[0] == hdr.MAGIC:
                    if head[3] == self.counters.run_id:
                        self.on_message(0, 0, 0, 0)
                    return
            self.on_other(frame.get_payload_as_bytes())
        else:
            Publisher.on_ws_frame(self, transport, frame)


def make_receiver(
    adapter: Adapter,
    lean: bool,
    channel: str,
    counters: Counters,
    tracker: StreamTracker,
    latency_append: Callable[[int], None],
) -> Receiver:
    """A receiver on ``channel``: the plain one for raw, else one that speaks ``adapter``."""
    if adapter.name == "raw":
        if lean:
            return LeanReceiver(counters, tracker, latency_append)
        return PicowsReceiver(counters, tracker, latency_append)
    receiver: AdaptedLeanReceiver | AdaptedPicowsReceiver
    if lean:
        receiver = AdaptedLeanReceiver(counters, tracker, latency_append)
    else:
        receiver = AdaptedPicowsReceiver(counters, tracker, latency_append)
    receiver._speak(adapter, channel)
    return receiver


def make_publisher(adapter: Adapter, channel: str, counters: Counters, pub_id: int) -> Publisher:
    """A fan-out publisher on ``channel``, speaking ``adapter`` unless it is raw."""
    if adapter.name == "raw":
        return Publisher(counters, pub_id)
    publisher = AdaptedPublisher(counters, pub_id)
    publisher._speak(adapter, channel)
    return publisher
