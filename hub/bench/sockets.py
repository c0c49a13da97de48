"""The bench's sockets: receivers and publishers on picows or on the lean client (``lean.py``).
They are opened by ``connect.py``; protocol adapters wrap them in ``adapted.py``.

The receive path reads the 28-byte header only and appends to flat counters, so one process
keeps up with over a million frames per second (``benchmarks/bench_client_receive.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from hub.bench import header as hdr
from hub.bench.lean import Counters, LeanSocket
from hub.bench.stats import StreamTracker

__all__ = [
    "MAX_FRAME_BYTES",
    "PICOWS_LOGGER",
    "READ_BUFFER_INIT_BYTES",
    "BenchListener",
    "LeanReceiver",
    "OnBench",
    "PicowsReceiver",
    "Publisher",
    "Receiver",
    "Socket",
]

# picows grows its read buffer on demand; start it small so that idle sockets stay cheap.
READ_BUFFER_INIT_BYTES = 2048
MAX_FRAME_BYTES = 64 * 1024 * 1024
PICOWS_LOGGER = logging.getLogger("picows.bench")
_monotonic_ns = time.monotonic_ns


class BenchListener(WSListener):
    """One socket. Subclasses decide what a received bench frame means."""

    __slots__ = ("counters", "is_closing", "transport")

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.transport: WSTransport | None = None
        self.is_closing = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.is_closing:
            self.counters.disconnected += 1
        self.transport = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.BINARY or msg_type is WSMsgType.TEXT:
            counters = self.counters
            counters.frames += 1
            counters.bytes += frame.payload_size
            if frame.payload_size < hdr.HEADER_SIZE:
                self.on_other(frame.get_payload_as_bytes())
                return
            magic, kind, _flags, run, pub_id, seq, sent_ns = hdr.HEADER.unpack_from(
                frame.get_payload_as_memoryview()
            )
            if magic != hdr.MAGIC:
                self.on_other(frame.get_payload_as_bytes())
            elif run != counters.run_id:
                counters.foreign += 1
            else:
                self.on_message(kind, pub_id, seq, sent_ns)
        elif msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        pass

    def on_other(self, payload: bytes) -> None:
        """A data frame without a bench header."""
        self.counters.other_frames += 1

    def send_binary(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType.BINARY, payload)

    #: How a bench message is sent: as is (protocol adapters wrap it).
    send_bench = send_binary

    def write_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType(opcode), payload)

    def close(self) -> None:
        self.is_closing = True
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


#: Called with (publisher id, sequence number) of each of this run's messages a receiver gets.
OnBench = Callable[[int, int], None]


class _RecordingSlots(Protocol):
    tracker: StreamTracker
    latency_append: Callable[[int], None]
    on_bench: OnBench | None


class _Recording:
    """What a receiver does with each bench message, on either client."""

    __slots__ = ()
    tracker: StreamTracker
    latency_append: Callable[[int], None]
    #: A scenario's hook (echo, broadcast-all), or None.
    on_bench: OnBench | None

    def _start_recording(
        self: _RecordingSlots, tracker: StreamTracker, latency_append: Callable[[int], None]
    ) -> None:
        # The slots live on the concrete receivers; a mixin with slots of its own would
        # clash with picows' extension-type base.
        self.tracker = tracker
        self.latency_append = latency_append
        self.on_bench = None

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        # The receive path of every message: keep it to a timestamp, one append and, for the
        # usual in-order message, one store (StreamTracker.record's first test, inlined).
        self.latency_append((_monotonic_ns() - sent_ns) // 1000)
        tracker = self.tracker
        next_seq = tracker.next_seq
        if pub_id < len(next_seq) and next_seq[pub_id] == seq:
            next_seq[pub_id] = seq + 1
        else:
            tracker.record_out_of_order(pub_id, seq)
        if self.on_bench is not None:
            self.on_bench(pub_id, seq)


class PicowsReceiver(_Recording, BenchListener):
    """A subscriber (fan-out), an echo client or a broadcast target on picows."""

    __slots__ = ("latency_append", "on_bench", "tracker")

    def __init__(
        self,
        counters: Counters,
        tracker: StreamTracker,
        latency_append: Callable[[int], None],
    ) -> None:
        BenchListener.__init__(self, counters)
        self._start_recording(tracker, latency_append)


class LeanReceiver(_Recording, LeanSocket):
    """The same on the lean client (``lean.py``): a bare protocol object per socket."""

    __slots__ = ("latency_append", "on_bench", "tracker")

    def __init__(
        self,
        counters: Counters,
        tracker: StreamTracker,
        latency_append: Callable[[int], None],
    ) -> None:
        LeanSocket.__init__(self, counters)
        self._start_recording(tracker, latency_append)


Receiver = PicowsReceiver | LeanReceiver
Socket = BenchListener | LeanReceiver


class Publisher(BenchListener):
    """A fan-out publisher. It gets its own messages back; they pace ``--rate max``."""

    __slots__ = ("echoed", "pub_id", "wakeup")

    def __init__(self, counters: Counters, pub_id: int) -> None:
        super().__init__(counters)
        self.pub_id = pub_id
        self.echoed = 0
        self.wakeup: asyncio.Event | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # The publisher's own echoes are not counted as deliveries: only subscribers are.
        # Another run's messages on the channel must not open this publisher's window.
        if frame.msg_type is WSMsgType.BINARY or frame.msg_type is WSMsgType.TEXT:
            if frame.payload_size >= hdr.HEADER_SIZE:
                run = hdr.HEADER.unpack_from(frame.get_payload_as_memoryview())[3]
                if run != self.counters.run_id:
                    return
            self.echoed += 1
            if self.wakeup is not None:
                self.wakeup.set()
        else:
            super().on_ws_frame(transport, frame)

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        """Its own message is back (an adapter's publisher; the raw one counts inline)."""
        self.echoed += 1
        if self.wakeup is not None:
            self.wakeup.set()
