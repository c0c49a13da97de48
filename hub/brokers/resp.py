"""A lean RESP2 connection to Redis on hiredis.Reader.

redis-py's PubSub object reads roughly 110-160k messages/s per process; feeding the socket's
bytes straight into ``hiredis.Reader`` reads about ten times as many, and lets the subscriber
hand everything already received to the fan-out as one batch.

On a network the common fault is silence: a link that drops packets leaves the connection
"open", and what was written into it is neither delivered nor refused. So a connection to
Redis (``liveness.py``) has a deadline for its connect and handshake, a reply deadline on
its commands, TCP keepalive and ``TCP_USER_TIMEOUT`` (the kernel drops it when what it sent
goes unacknowledged that long), and it always ends with an RST (``SO_LINGER`` 0): the kernel
discards what it still holds instead of retransmitting it once the link heals, after the
broker has sent the same commands again on a new connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import hiredis
from redis.connection import parse_url

from hub.brokers.liveness import CONNECT_TIMEOUT_S, REPLY_TIMEOUT_S, harden

__all__ = [
    "Connection",
    "Endpoint",
    "RespConnection",
    "encode_command",
    "open_connection",
    "publish_header",
]

Reply = Any


def publish_header(key: bytes, payload_len: int, command: bytes = b"PUBLISH") -> bytes:
    """``PUBLISH key`` (or ``SPUBLISH``) and the payload's length prefix: the hot path writes
    this, the payload and CRLF as three parts of one write, so the payload is never copied
    into a command."""
    return b"*3\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n" % (
        len(command),
        command,
        len(key),
        key,
        payload_len,
    )


def encode_command(*args: bytes) -> bytes:
    """One command in RESP2 wire form."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach Redis, parsed from a URL."""

    host: str | None = None
    port: int = 6379
    path: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    tls_verify: bool = True

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        kw = parse_url(url)  # type: ignore[no-untyped-call]
        conn_class = kw.get("connection_class")
        tls = conn_class is not None and conn_class.__name__ == "SSLConnection"
        return cls(
            host=kw.get("host"),
            port=int(kw.get("port") or 6379),
            path=kw.get("path"),
            username=kw.get("username"),
            password=kw.get("password"),
            db=int(kw.get("db") or 0),
            tls=tls,
            tls_verify=kw.get("ssl_cert_reqs", "required") not in ("none", None),
        )

    def describe(self) -> str:
        where = self.path if self.path else f"{self.host}:{self.port}"
        return ("rediss://" if self.tls else "redis://") + where if not self.path else where


class Connection(Protocol):
    """What the broker's loops need of a connection: a RespConnection, or on Redis Cluster
    one partition's share of a connection to a node (``hub.brokers.cluster.mux``)."""

    lost: asyncio.Future[Exception | None]

    @property
    def is_open(self) -> bool: ...

    def send(self, data: bytes, replies: int = 0) -> None:
        """Write ``data``, which makes ``replies`` replies in order (PINGs, on pub/sub)."""
        ...

    async def command(self, *args: bytes, timeout_s: float = REPLY_TIMEOUT_S) -> Reply: ...

    def close(self) -> None:
        """Stop using it: its ``lost`` resolves, and later replies to it are dropped."""
        ...

    def abort(self) -> None:
        """Drop the network connection itself (a deaf one): all that share it reconnect."""
        ...


class RespConnection(asyncio.Protocol):
    """One connection: replies to ``command`` go to their awaiting futures, and every other
    reply (pub/sub pushes, pipelined publish replies) goes to ``on_replies`` in batches of
    everything parsed from one read."""

    def __init__(self, on_replies: Callable[[list[Reply]], None]) -> None:
        self.on_replies = on_replies
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._reader = hiredis.Reader()
        self._waiters: deque[asyncio.Future[Reply]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            harden(sock)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        replies: list[Reply] = []
        waiters = self._waiters
        while True:
            reply = reader.gets()
            if reply is False:
                break
            if waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
            else:
                replies.append(reply)
        if replies:
            self.on_replies(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("connection to Redis lost"))
        self._waiters.clear()
        if not self.lost.done():
            self.lost.set_result(exc)

    async def command(self, *args: bytes, timeout_s: float = REPLY_TIMEOUT_S) -> Reply:
        """Send one command and await its reply; raise on an error reply. A reply that does
        not come within ``timeout_s`` aborts the connection: the link, or Redis, is dead."""
        assert self.transport is not None
        if self.lost.done():
            # Reset before this command (a server that accepts and resets at once): an
            # ordinary lost connection, not uvloop's RuntimeError of a closed transport.
            raise ConnectionError("connection to Redis lost (reset by the server)")
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.transport.write(encode_command(*args))
        try:
            reply = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            self.abort()
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.lost.done()

    def send(self, data: bytes, replies: int = 0) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        """Abandon the connection with an RST (``SO_LINGER`` 0, set at connect): what is
        still unsent or unacknowledged is discarded here, never retransmitted later."""
        if self.transport is not None:
            self.transport.abort()

    abort = close


async def open_connection(
    endpoint: Endpoint,
    on_replies: Callable[[list[Reply]], None],
    *,
    name: str,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> RespConnection:
    """Connect, authenticate, select the database and name the client, all within
    ``timeout_s``: a SYN dropped by a partition is a TimeoutError, not a stall."""
    loop = asyncio.get_running_loop()

    def factory() -> RespConnection:
        return RespConnection(on_replies)

    if endpoint.path:
        coro = loop.create_unix_connection(factory, endpoint.path)
    else:
        ctx: ssl.SSLContext | None = None
        if endpoint.tls:
            ctx = ssl.create_default_context()
            if not endpoint.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        coro = loop.create_connection(factory, endpoint.host or "localhost", endpoint.port, ssl=ctx)
    async with asyncio.timeout(timeout_s):
        _, conn = await coro
        try:
            if endpoint.password is not None:
                if endpoint.username:
                    user, password = endpoint.username.encode(), endpoint.password.encode()
                    await conn.command(b"AUTH", user, password)
                else:
                    await conn.command(b"AUTH", endpoint.password.encode())
            if endpoint.db:
                await conn.command(b"SELECT", str(endpoint.db).encode())
            await conn.command(b"CLIENT", b"SETNAME", name.encode())
        except BaseException:
            conn.close()
            raise
    return conn
