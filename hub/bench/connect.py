"""Opening a worker's sockets: at most --concurrency / procs handshakes in flight, paced by
--ramp, each bound to its --source-addr, on picows or on the lean client; a protocol adapter's
socket counts once it has joined its channel.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from picows import ws_connect

from hub.bench.config import RunConfig
from hub.bench.protocols.base import Adapter, AdapterError
from hub.bench.ramp import start_offset_s
from hub.bench.sizing import local_port_range, place, source_port
from hub.bench.sockets import (
    MAX_FRAME_BYTES,
    PICOWS_LOGGER,
    READ_BUFFER_INIT_BYTES,
    BenchListener,
    LeanReceiver,
    Socket,
)
from hub.bench.target import ssl_context
from hub.bench.wire import request_prefix, split_url

__all__ = ["Connector", "connect_all", "connect_bound"]

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: A chosen source port that is in use: at bind() (EADDRINUSE) or at connect() (EADDRNOTAVAIL).
_PORT_TAKEN = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)


async def connect_all(
    config: RunConfig,
    listeners: list[tuple[int, str, Socket]],
    on_failure: Callable[[Exception], None],
) -> None:
    """Open the sockets with at most --concurrency / procs handshakes in flight."""
    await Connector(config, on_failure).connect_all(listeners)


class Connector:
    """What the connections of one call share: the TLS context, the lean client's upgrade
    request per URL, the ramp's start time."""

    def __init__(self, config: RunConfig, on_failure: Callable[[Exception], None]) -> None:
        self.config = config
        self.on_failure = on_failure
        self.loop = asyncio.get_running_loop()
        # The lean client's upgrade request, built once per URL.
        self.prefixes: dict[str, tuple[str, int, bytes, ssl.SSLContext | None]] = {}
        # One TLS context for all sockets: loading the trust store is slow.
        self.tls = (
            ssl_context(config.handshake)
            if any(urlsplit(url).scheme == "wss" for url in config.urls)
            else None
        )
        self.ramp_t0 = self.loop.time()
        self.port_range = local_port_range()

    async def connect_all(self, listeners: list[tuple[int, str, Socket]]) -> None:
        pending = iter(listeners)
        per_worker = max(1, self.config.concurrency // self.config.procs)

        async def run() -> None:
            for index, url, listener in pending:
                await self.wait_ramp(index)
                await self.connect_one(index, url, listener)

        await asyncio.gather(*(run() for _ in range(min(per_worker, len(listeners)))))

    async def wait_ramp(self, index: int) -> None:
        """With --ramp, wait until socket ``index`` is due."""
        ramp = self.config.ramp
        if ramp:
            delay = self.ramp_t0 + start_offset_s(ramp, index) - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def connect_one(self, index: int, url: str, listener: Socket) -> None:
        config = self.config
        try:
            deadline = self.loop.time() + config.connect_timeout_s
            async with asyncio.timeout_at(deadline):
                if isinstance(listener, LeanReceiver):
                    await self.connect_lean(index, url, listener)
                else:
                    await self.connect_picows(index, url, listener)
            await self.wait_joined(listener, deadline)
        except Exception as exc:  # every failure is counted, by type
            joined: asyncio.Future[None] | None = getattr(listener, "join_waiter", None)
            if joined is not None:
                listener.close()  # before settling: closing fails a join still waited for
                _settle(joined)
            self.on_failure(exc)

    async def wait_joined(self, listener: Socket, deadline: float) -> None:
        """A protocol adapter's socket counts once it is on its channel (adapted.py)."""
        joined: asyncio.Future[None] | None = getattr(listener, "join_waiter", None)
        if joined is None:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await joined
        except TimeoutError:
            listener.close()
            adapter: Adapter = getattr(listener, "adapter")  # noqa: B009 - the adapted sockets'
            config = self.config
            raise AdapterError(
                f"--protocol {config.protocol}: {adapter.waiting_for()} never came "
                f"within {config.connect_timeout_s:g}s; does the server speak it, at "
                "this --url?"
            ) from None

    async def connect_picows(self, index: int, url: str, listener: BenchListener) -> None:
        config = self.config
        spot = place(index, config.urls, config.source_addrs)
        port = self.source_port(index)
        try:
            await self._connect_picows(url, listener, spot.source_addr, port)
        except OSError as exc:
            if port is None or not _port_taken(exc):
                raise
            await self._connect_picows(url, listener, spot.source_addr, None)

    def source_port(self, index: int) -> int | None:
        config = self.config
        return source_port(index, config.urls, config.source_addrs, self.port_range)

    async def _connect_picows(
        self, url: str, listener: BenchListener, source_addr: str | None, port: int | None
    ) -> None:
        config = self.config
        factory = None
        if source_addr is not None:
            factory = _bound_socket_factory(source_addr, port)
        await ws_connect(
            lambda: listener,
            url,
            websocket_handshake_timeout=config.connect_timeout_s,
            enable_auto_ping=False,
            max_frame_size=MAX_FRAME_BYTES,
            read_buffer_init_size=READ_BUFFER_INIT_BYTES,
            socket_factory=factory,
            ssl_context=self.tls if url.startswith("wss:") else None,
            extra_headers=config.handshake.headers or None,
            # aiofastnet, when installed, costs about 8 KiB more per idle socket.
            use_aiofastnet=False,
            # One logger for all sockets: the default makes an adapter per socket.
            logger_name=PICOWS_LOGGER,
        )

    def lean_target(self, url: str) -> tuple[str, int, bytes, ssl.SSLContext | None]:
        """(host, port, upgrade request prefix, TLS context) of ``url``, built once."""
        target = self.prefixes.get(url)
        if target is None:
            host, port, path, netloc = split_url(url)
            prefix = request_prefix(netloc, path, self.config.handshake.header_lines())
            context = self.tls if url.startswith("wss:") else None
            target = self.prefixes[url] = (host, port, prefix, context)
        return target

    async def connect_lean(self, index: int, url: str, listener: LeanReceiver) -> None:
        loop = self.loop
        host, port, prefix, context = self.lean_target(url)
        hostname = host if context is not None else None
        waiter: asyncio.Future[None] = loop.create_future()
        listener.start(prefix, waiter)
        try:
            source_addr = place(index, self.config.urls, self.config.source_addrs).source_addr
            if source_addr is None:
                await loop.create_connection(
                    lambda: listener, host, port, ssl=context, server_hostname=hostname
                )
            else:
                sock = await connect_bound(loop, source_addr, self.source_port(index), host, port)
                await loop.create_connection(
                    lambda: listener, sock=sock, ssl=context, server_hostname=hostname
                )
            await waiter
        except BaseException:
            listener.close()  # fails the waiter, when nothing else had ended it
            raise
        finally:
            _settle(waiter)


async def connect_bound(
    loop: asyncio.AbstractEventLoop, source_addr: str, source_port: int | None, host: str, port: int
) -> socket.socket:
    """A socket from ``source_addr`` connected to (host, port): from ``source_port`` when its
    4-tuple is free, else from the port the kernel picks."""
    while True:
        sock = _bound_socket(source_addr, source_port)
        try:
            await loop.sock_connect(sock, (host, port))
            return sock
        except OSError as exc:
            sock.close()
            if source_port is None or not _port_taken(exc):
                raise
            source_port = None
        except BaseException:
            sock.close()
            raise


def _settle(future: asyncio.Future[None]) -> None:
    """Mark ``future``'s outcome as seen (or cancel it): a failed connection already counts as
    one failure, and asyncio would print "Future exception was never retrieved" for each."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


def _bound_socket(source_addr: str, port: int | None) -> socket.socket:
    """A non-blocking socket bound to ``source_addr``: to ``port`` (``sizing.source_port``)
    when it is free, else to the port the kernel picks at connect() time.

    SO_REUSEADDR lets sockets to different targets share a source port (their 4-tuples still
    differ), and a port whose last owner is in TIME_WAIT be bound again (on loopback, Linux
    reuses such a 4-tuple at connect(): net.ipv4.tcp_tw_reuse=2); a listener still refuses.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        bound = False
        if port is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((source_addr, port))
                bound = True
            except OSError as exc:
                if not _port_taken(exc):
                    raise
        if not bound:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source_addr, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _bound_socket_factory(source_addr: str, port: int | None) -> Callable[[object], socket.socket]:
    def factory(_url: object) -> socket.socket:
        return _bound_socket(source_addr, port)

    return factory


def _port_taken(exc: OSError) -> bool:
    """The chosen source port is in use: at bind() (EADDRINUSE) or, for its 4-tuple, at
    connect() (EADDRNOTAVAIL)."""
    return exc.errno in _PORT_TAKEN
