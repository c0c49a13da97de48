"""A worker process: it holds a share of the sockets and plays the scenario on them.

The coordinator talks to it through a pipe (commands in) and a queue (events out); see
``coordinator.py``. The receivers are lean sockets (``lean.py``: one protocol object per socket)
or picows listeners (``--client``); fan-out publishers are picows listeners. Either way the
receive path reads the 24-byte header only and appends to flat counters, so one process keeps up
with over a million frames per second (``benchmarks/bench_client_receive.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import psutil
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from hub.bench import header as hdr
from hub.bench.config import RunConfig
from hub.bench.lean import Counters, LeanSocket, request_prefix, split_url
from hub.bench.sizing import place, worker_indices
from hub.bench.stats import LatencyRecorder, StreamTracker, Tally
from hub.core.limits import raise_open_file_limit

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# picows grows its read buffer on demand; start it small so that idle sockets stay cheap.
READ_BUFFER_INIT_BYTES = 2048
MAX_FRAME_BYTES = 64 * 1024 * 1024
PICOWS_LOGGER = logging.getLogger("picows.bench")


class EventQueue(Protocol):
    def put(self, obj: Any) -> None: ...


def ws_url(base: str, channel: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}/{quote(channel, safe='')}"


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
                counters.other_frames += 1
                return
            magic, kind, _flags, pub_id, seq, sent_ns = hdr.HEADER.unpack_from(
                frame.get_payload_as_memoryview()
            )
            if magic != hdr.MAGIC:
                counters.other_frames += 1
                return
            self.on_message(kind, pub_id, seq, sent_ns)
        elif msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        pass

    def send_binary(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType.BINARY, payload)

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
        if frame.msg_type is WSMsgType.BINARY or frame.msg_type is WSMsgType.TEXT:
            self.echoed += 1
            if self.wakeup is not None:
                self.wakeup.set()
        else:
            super().on_ws_frame(transport, frame)


class Worker:
    def __init__(self, config: RunConfig, index: int, commands: Connection, events: EventQueue):
        self.config = config
        self.index = index
        self.commands = commands
        self.events = events
        self.counters = Counters()
        self.tally = Tally()
        self.recorder = LatencyRecorder()
        self.receivers: list[Receiver] = []
        self.publishers: list[Publisher] = []
        self.num_failed = 0
        self.errors: Counter[str] = Counter()
        self.inbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.process = psutil.Process()
        self.cpu_samples: list[float] = []
        self.phase_cpu_s = 0.0
        self.phase_wall_s = 0.0
        # broadcast-all: per round, arrivals and the last arrival time
        self.round_counts: Counter[int] = Counter()
        self.round_last_ns: dict[int, int] = {}
        # fanout: messages sent per publisher id
        self.sent_by_pub: dict[int, int] = {}

    # Plumbing

    def emit(self, kind: str, **data: Any) -> None:
        self.events.put((kind, self.index, data))

    def start_command_reader(self, loop: asyncio.AbstractEventLoop) -> None:
        def read() -> None:
            while True:
                try:
                    message = self.commands.recv()
                except (EOFError, OSError):
                    message = ("stop", {})
                loop.call_soon_threadsafe(self.inbox.put_nowait, message)
                if message[0] == "stop":
                    return

        threading.Thread(target=read, name="bench-commands", daemon=True).start()

    async def expect(self, *kinds: str) -> dict[str, Any]:
        while True:
            kind, data = await self.inbox.get()
            if kind in kinds:
                data["_kind"] = kind
                return data
            if kind == "stop":
                raise SystemExit(0)

    # Connecting

    async def connect_all(self, listeners: list[tuple[int, str, Socket]]) -> None:
        """Open the sockets with at most --concurrency / procs handshakes in flight."""
        config = self.config
        pending = iter(listeners)
        per_worker = max(1, config.concurrency // config.procs)
        loop = asyncio.get_running_loop()
        # The lean client's upgrade request, built once per URL.
        prefixes: dict[str, tuple[str, int, bytes]] = {}

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
                # aiofastnet, when installed, costs about 8 KiB more per idle socket.
                use_aiofastnet=False,
                # One logger for all sockets: the default makes an adapter per socket.
                logger_name=PICOWS_LOGGER,
            )

        async def connect_lean(index: int, url: str, listener: LeanReceiver) -> None:
            target = prefixes.get(url)
            if target is None:
                host, port, path, netloc = split_url(url)
                target = prefixes[url] = (host, port, request_prefix(netloc, path))
            host, port, prefix = target
            waiter: asyncio.Future[None] = loop.create_future()
            listener.start(prefix, waiter)
            try:
                source_addr = place(index, config.urls, config.source_addrs).source_addr
                if source_addr is None:
                    await loop.create_connection(lambda: listener, host, port)
                else:
                    sock = _bound_socket_factory(source_addr)(None)
                    try:
                        await loop.sock_connect(sock, (host, port))
                    except BaseException:
                        sock.close()
                        raise
                    await loop.create_connection(lambda: listener, sock=sock)
                await waiter
            except BaseException:
                listener.close()
                raise

        async def connect_one(index: int, url: str, listener: Socket) -> None:
            try:
                async with asyncio.timeout(config.connect_timeout_s):
                    if isinstance(listener, LeanReceiver):
                        await connect_lean(index, url, listener)
                    else:
                        await connect_picows(index, url, listener)
            except Exception as exc:  # every failure is counted, by type
                self.num_failed += 1
                self.errors[type(exc).__name__] += 1

        async def run() -> None:
            for index, url, listener in pending:
                await connect_one(index, url, listener)

        await asyncio.gather(*(run() for _ in range(min(per_worker, len(listeners)))))

    # Reporting

    def snapshot(self) -> dict[str, Any]:
        cpu = self.process.cpu_percent(None)
        self.cpu_samples.append(cpu)
        # broadcast-all takes its histograms per round, in broadcast_all().
        if self.config.scenario == "broadcast-all":
            interval = LatencyRecorder().total
        else:
            interval = self.recorder.flush()
        return {
            "connected": self.num_connected(),
            "failed": self.num_failed,
            "disconnected": self.counters.disconnected,
            "frames": self.counters.frames,
            "bytes": self.counters.bytes,
            "sent": self.counters.sent,
            "unique": self.tally.unique,
            "cpu_percent": cpu,
            "interval_hist": interval.encode() if interval.get_total_count() else b"",
            "t_ns": time.monotonic_ns(),
        }

    def num_connected(self) -> int:
        listeners: list[Socket] = [*self.receivers, *self.publishers]
        return sum(1 for item in listeners if item.transport is not None)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            self.emit("progress", **self.snapshot())

    def result(self) -> dict[str, Any]:
        snap = self.snapshot()
        rss = self.process.memory_info().rss
        usage = resource.getrusage(resource.RUSAGE_SELF)
        samples = self.cpu_samples[1:] or self.cpu_samples
        return snap | {
            "tally": self.tally.as_dict(),
            "other_frames": self.counters.other_frames,
            "errors": dict(self.errors),
            "hist": self.recorder.total.encode() if self.recorder.total.get_total_count() else b"",
            "pid": os.getpid(),
            "rss_bytes": rss,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "cpu_percent_max": max(samples, default=0.0),
            "cpu_percent_phase": (
                100.0 * self.phase_cpu_s / self.phase_wall_s if self.phase_wall_s else 0.0
            ),
            "receivers": len(self.receivers),
            "receivers_connected": sum(1 for r in self.receivers if r.transport is not None),
        }

    def measure_phase(self) -> Callable[[], None]:
        """Start timing the measured phase; call the result to stop."""
        cpu0, wall0 = time.process_time(), time.monotonic()

        def stop() -> None:
            self.phase_cpu_s += time.process_time() - cpu0
            self.phase_wall_s += time.monotonic() - wall0

        return stop

    # Scenarios

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        self.start_command_reader(loop)
        self.emit("ready", pid=os.getpid(), rss_bytes=self.process.memory_info().rss)
        self.process.cpu_percent(None)
        await self.expect("connect")
        # Before build(): the per-socket figure includes the receiver objects themselves.
        rss_before = self.process.memory_info().rss
        listeners = self.build()
        started = time.monotonic()
        ticker = asyncio.create_task(self.ticker())
        try:
            await self.connect_all(listeners)
            self.emit(
                "connected",
                connected=self.num_connected(),
                receivers_connected=sum(1 for r in self.receivers if r.transport is not None),
                failed=self.num_failed,
                connect_s=time.monotonic() - started,
                rss_before=rss_before,
                rss_after=self.process.memory_info().rss,
            )
            scenario = {
                "fanout": self.fanout,
                "echo": self.echo,
                "conns": self.conns,
                "broadcast-all": self.broadcast_all,
            }[self.config.scenario]
            await scenario()
            self.emit("result", **self.result())
            await self.expect("stop")
        finally:
            ticker.cancel()
            for listener in [*self.receivers, *self.publishers]:
                listener.close()

    def build(self) -> list[tuple[int, str, Socket]]:
        config = self.config
        out: list[tuple[int, str, Socket]] = []
        receiver_class: type[Receiver] = (
            LeanReceiver if config.receiver_client() == "lean" else PicowsReceiver
        )
        num_pubs = max(1, config.num_publishers)
        append = self.recorder.pending.append
        for index in worker_indices(config.num_sockets, self.index, config.procs):
            tracker = StreamTracker(num_pubs if config.scenario == "fanout" else 1, self.tally)
            receiver = receiver_class(self.counters, tracker, append)
            if config.scenario == "broadcast-all":
                receiver.on_bench = self.on_broadcast
            self.receivers.append(receiver)
            url = ws_url(
                place(index, config.urls, config.source_addrs).url, config.channel_of(index)
            )
            out.append((index, url, receiver))
        if config.scenario == "fanout":
            for pub_id in worker_indices(config.num_publishers, self.index, config.procs):
                publisher = Publisher(self.counters, pub_id)
                self.publishers.append(publisher)
                # Publishers get indices after the subscribers': another spread of sources.
                index = config.num_sockets + pub_id
                url = ws_url(place(index, config.urls, config.source_addrs).url, config.channel)
                out.append((index, url, publisher))
        return out

    async def drain(self, expected_unique: int) -> None:
        """Wait until every expected message is in, or the drain timeout."""
        deadline = time.monotonic() + self.config.drain_timeout_s
        # Polling, on purpose: the receive path only bumps counters, it sets no event per frame.
        while self.tally.unique < expected_unique and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def fanout(self) -> None:
        config = self.config
        start = await self.expect("start")
        stop_phase = self.measure_phase()
        counts = [
            _share(config.messages, config.num_publishers, p.pub_id)
            if config.messages is not None
            else None
            for p in self.publishers
        ]
        rate_each = config.rate / config.num_publishers if config.rate else None
        deadline = start["t0_ns"] / 1e9 + config.duration_s
        await asyncio.gather(
            *(
                self.publish(pub, count, rate_each, deadline)
                for pub, count in zip(self.publishers, counts, strict=True)
            )
        )
        self.emit(
            "sent",
            sent_by_pub={p.pub_id: self.sent_by_pub.get(p.pub_id, 0) for p in self.publishers},
        )
        drain = await self.expect("drain")
        connected = sum(1 for r in self.receivers if r.transport is not None)
        await self.drain(connected * int(drain["total_sent"]))
        stop_phase()

    async def publish(
        self, pub: Publisher, count: int | None, rate: float | None, deadline: float
    ) -> None:
        """Send ``count`` messages (or until ``deadline``) at ``rate``, or windowed at max rate."""
        config = self.config
        limit = count if count is not None else 1 << 62
        size = max(config.size, hdr.HEADER_SIZE)
        padding = b"\x00" * (size - hdr.HEADER_SIZE)
        pack = hdr.HEADER.pack
        magic, kind, pub_id = hdr.MAGIC, hdr.KIND_FANOUT, pub.pub_id
        counters = self.counters
        pub.wakeup = asyncio.Event()
        seq = 0
        started = time.monotonic()
        while seq < limit and pub.transport is not None:
            now = time.monotonic()
            if now >= deadline:
                break
            if rate is None:
                allowed = pub.echoed + config.window - seq
            else:
                allowed = int((now - started) * rate) + 1 - seq
            allowed = min(allowed, limit - seq, 1024)
            send = pub.send_binary
            for _ in range(max(0, allowed)):
                send(pack(magic, kind, 0, pub_id, seq, time.monotonic_ns()) + padding)
                seq += 1
            counters.sent += max(0, allowed)
            if rate is None:
                pub.wakeup.clear()
                if pub.echoed + config.window - seq <= 0:
                    try:
                        await asyncio.wait_for(pub.wakeup.wait(), max(0.001, deadline - now))
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)
            else:
                next_due = started + (seq / rate)
                await asyncio.sleep(max(0.0, next_due - time.monotonic()))
        self.sent_by_pub[pub.pub_id] = seq

    async def echo(self) -> None:
        config = self.config
        start = await self.expect("start")
        stop_phase = self.measure_phase()
        deadline = start["t0_ns"] / 1e9 + config.duration_s
        limit = config.messages if config.messages is not None else 1 << 62
        size = max(config.size, hdr.HEADER_SIZE)
        padding = b"\x00" * (size - hdr.HEADER_SIZE)
        pack = hdr.HEADER.pack
        sent: dict[int, int] = {}
        counters = self.counters
        done = asyncio.Event()
        active = [0]

        def send_next(receiver: Receiver, client_id: int) -> None:
            seq = sent.get(client_id, 0)
            if seq >= limit or time.monotonic() >= deadline or receiver.transport is None:
                active[0] -= 1
                if active[0] <= 0:
                    done.set()
                return
            sent[client_id] = seq + 1
            counters.sent += 1
            receiver.send_binary(
                pack(hdr.MAGIC, hdr.KIND_ECHO, 0, 0, seq, time.monotonic_ns()) + padding
            )

        def on_echo(receiver: Receiver, pub_id: int, seq: int) -> None:
            if seq + 1 == sent.get(pub_id):  # its latest: send the next one
                send_next(receiver, pub_id)

        for client_id, receiver in enumerate(self.receivers):
            # Each echo client is the one publisher (id 0) of its own channel.
            receiver.on_bench = lambda r, _pub, seq, cid=client_id: on_echo(r, cid, seq)
            if receiver.transport is not None:
                active[0] += 1
        for client_id, receiver in enumerate(self.receivers):
            if receiver.transport is not None:
                send_next(receiver, client_id)
        if active[0] <= 0:
            done.set()
        try:
            await asyncio.wait_for(done.wait(), config.duration_s + config.drain_timeout_s + 1)
        except TimeoutError:
            pass
        await self.drain(sum(sent.values()))
        stop_phase()

    async def conns(self) -> None:
        await self.expect("start")
        stop_phase = self.measure_phase()
        await self.expect("finish")
        stop_phase()

    def on_broadcast(self, receiver: Receiver, pub_id: int, seq: int) -> None:
        self.round_counts[seq] += 1
        now = time.monotonic_ns()
        if now > self.round_last_ns.get(seq, 0):
            self.round_last_ns[seq] = now

    async def broadcast_all(self) -> None:
        config = self.config
        await self.expect("start")
        stop_phase = self.measure_phase()
        # The first socket of each channel sends that channel's message.
        senders = [
            (index, receiver)
            for index, receiver in zip(
                worker_indices(config.num_sockets, self.index, config.procs),
                self.receivers,
                strict=True,
            )
            if index < max(1, config.num_channels)
        ]
        size = max(config.size, hdr.HEADER_SIZE)
        while True:
            command = await self.expect("round", "finish")
            if command["_kind"] == "finish":
                break
            round_no = int(command["round"])
            first_send_ns = 0
            for _index, receiver in senders:
                if receiver.transport is not None:
                    now = time.monotonic_ns()
                    first_send_ns = first_send_ns or now
                    payload = hdr.encode(hdr.KIND_BROADCAST, 0, round_no, now, size)
                    receiver.send_binary(payload)
                    self.counters.sent += 1
            expected = sum(1 for r in self.receivers if r.transport is not None)
            deadline = time.monotonic() + config.round_timeout_s
            while (  # noqa: ASYNC110 - polled, as in drain()
                self.round_counts[round_no] < expected and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.002)
            hist = self.recorder.flush()
            self.emit(
                "round",
                round=round_no,
                received=self.round_counts[round_no],
                expected=expected,
                first_send_ns=first_send_ns,
                last_arrival_ns=self.round_last_ns.get(round_no, 0),
                hist=hist.encode() if hist.get_total_count() else b"",
            )
        stop_phase()


def _share(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split as evenly as possible into ``parts``."""
    return total // parts + (1 if index < total % parts else 0)


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


def run_worker(config: RunConfig, index: int, commands: Connection, events: EventQueue) -> None:
    """The worker process's entry point (multiprocessing spawn target)."""
    raise_open_file_limit()
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    worker = Worker(config, index, commands, events)
    try:
        runner(worker.main())
    except SystemExit:
        pass
    except BaseException as exc:
        logger.exception("bench worker %d failed", index)
        events.put(("error", index, {"message": f"{type(exc).__name__}: {exc}"}))
