"""The bench's WebSocket clients: receivers and publishers on picows or on the lean client
(``lean.py``), and the connecting of many of them with bounded concurrency.

The receive path reads the 28-byte header only and appends to flat counters, so one process
keeps up with over a million frames per second (``benchmarks/bench_client_receive.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from hub.bench import header as hdr
from hub.bench.config import RunConfig
from hub.bench.lean import Counters, LeanSocket
from hub.bench.protocols.base import AdapterError
from hub.bench.ramp import start_offset_s
from hub.bench.sizing import place
from hub.bench.stats import StreamTracker
from hub.bench.target import ssl_context
from hub.bench.wire import request_prefix, split_url

__all__ = [
    "MAX_FRAME_BYTES",
    "PICOWS_LOGGER",
    "READ_BUFFER_INIT_BYTES",
    "BenchListener",
    "LeanReceiver",
    "PicowsReceiver",
    "Publisher",
    "Receiver",
    "Socket",
    "connect_all",
]

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# picows grows its read buffer on demand; start it small so that idle sockets stay cheap.
READ_BUFFER_INIT_BYTES = 2048
MAX_FRAME_BYTES = 64 * 1024 * 1024
PICOWS_LOGGER = logging.getLogger("picows.bench")


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


class _Recording:
    """What a receiver does with each bench message, on either client."""

    __slots__ = ()
    tracker: StreamTracker
    latency_append: Callable[[int], None]
    on_bench: Callable[[Receiver, int, int], None] | None

    def _start_recording(
        self, tracker: StreamTracker, latency_append: Callable[[int], None]
    ) -> None:
        # The slots live on the concrete receivers; a mixin with slots of its own would
        # clash with picows' extension-type base.
        self.tracker = tracker  # type: ignore[misc]
        self.latency_append = latency_append
        self.on_bench = None  # type: ignore[misc]

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        self.latency_append((time.monotonic_ns() - sent_ns) // 1000)
        self.tracker.record(pub_id, seq)
        if self.on_bench is not None:
            self.on_bench(self, pub_id, seq)  # type: ignore[arg-type]


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


async def connect_all(
    config: RunConfig,
    listeners: list[tuple[int, str, Socket]],
    on_failure: Callable[[Exception], None],
) -> None:
    """Open the sockets with at most --concurrency / procs handshakes in flight."""
    pending = iter(listeners)
    per_worker = max(1, config.concurrency // config.procs)
    loop = asyncio.get_running_loop()
    # The lean client's upgrade request, built once per URL.
    prefixes: dict[str, tuple[str, int, bytes, ssl.SSLContext | None]] = {}
    handshake = config.handshake
    # One TLS context for all sockets: loading the trust store is slow.
    tls = (
        ssl_context(handshake)
        if any(urlsplit(url).scheme == "wss" for url in config.urls)
        else None
    )

    async def connect_picows(index: int, url: str, listener: BenchListener) -> None:
        spot = place(index, config.urls, config.source_addrs)
        factory = None
        if spot.source_addr is not None:
            factory = _bound_socket_factory(spot.source_addr)
        await ws_connect(
            lambda: listener,
            url,
            websocket_handshake_timeout=config.connect_timeout_s,
            enable_auto_ping=False,
            max_frame_size=MAX_FRAME_BYTES,
            read_buffer_init_size=READ_BUFFER_INIT_BYTES,
            socket_factory=factory,
            ssl_context=tls if url.startswith("wss:") else None,
            extra_headers=handshake.headers or None,
            # aiofastnet, when installed, costs about 8 KiB more per idle socket.
            use_aiofastnet=False,
            # One logger for all sockets: the default makes an adapter per socket.
            logger_name=PICOWS_LOGGER,
        )

    async def connect_lean(index: int, url: str, listener: LeanReceiver) -> None:
        target = prefixes.get(url)
        if target is None:
            host, port, path, netloc = split_url(url)
            prefix = request_prefix(netloc, path, handshake.header_lines())
            target = prefixes[url] = (host, port, prefix, tls if url.startswith("wss:") else None)
        host, port, prefix, context = target
        hostname = host if context is not None else None
        waiter: asyncio.Future[None] = loop.create_future()
        listener.start(prefix, waiter)
        try:
            source_addr = place(index, config.urls, config.source_addrs).source_addr
            if source_addr is None:
                await loop.create_connection(
                    lambda: listener, host, port, ssl=context, server_hostname=hostname
                )
            else:
                sock = _bound_socket_factory(source_addr)(None)
                try:
                    await loop.sock_connect(sock, (host, port))
                except BaseException:
                    sock.close()
                    raise
                await loop.create_connection(
                    lambda: listener, sock=sock, ssl=context, server_hostname=hostname
                )
            await waiter
        except BaseException:
            listener.close()
            raise

    async def connect_one(index: int, url: str, listener: Socket) -> None:
        try:
            deadline = loop.time() + config.connect_timeout_s
            async with asyncio.timeout_at(deadline):
                if isinstance(listener, LeanReceiver):
                    await connect_lean(index, url, listener)
                else:
                    await connect_picows(index, url, listener)
            # A protocol adapter's socket counts once it is on its channel (adapted.py).
            joined: asyncio.Future[None] | None = getattr(listener, "join_waiter", None)
            if joined is not None:
                try:
                    async with asyncio.timeout_at(deadline):
                        await joined
                except TimeoutError:
                    listener.close()
                    adapter = listener.adapter  # type: ignore[union-attr]
                    raise AdapterError(
                        f"--protocol {config.protocol}: {adapter.waiting_for()} never came "
                        f"within {config.connect_timeout_s:g}s; does the server speak it, at "
                        "this --url?"
                    ) from None
        except Exception as exc:  # every failure is counted, by type
            on_failure(exc)

    ramp_t0 = loop.time()

    async def run() -> None:
        for index, url, listener in pending:
            if config.ramp:
                delay = ramp_t0 + start_offset_s(config.ramp, index) - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await connect_one(index, url, listener)

    await asyncio.gather(*(run() for _ in range(min(per_worker, len(listeners)))))


def _bound_socket_factory(source_addr: str) -> Callable[[object], socket.socket]:
    def factory(_url: object) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Pick the port at connect() time, per destination, not at bind() time per address.
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source_addr, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    return factory
