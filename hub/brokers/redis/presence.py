"""Presence on Redis: per channel, a hash of this cluster's clients (client → process and
user) and a zset of the processes that hold them, by expiry.

Writes go through the broker's publish pipeline (in order with its publishes, skipped while
Redis is unreachable: the node writes its members again once it is back); reads go through
the broker's reader, as one script that leaves out the clients of expired processes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import Protocol

from hub.brokers.names import Names
from hub.brokers.resp import Reply
from hub.brokers.scripts import PRESENCE_SCRIPT

__all__ = ["RedisPresence"]


class Send(Protocol):
    """Queues one whole command on the publish pipeline (``RedisPipeline.command``)."""

    def __call__(self, *args: bytes) -> None: ...


class RunScript(Protocol):
    """Runs a script on the reader (``RedisReader.run_script``); BrokerUnavailable."""

    def __call__(self, what: str, script: bytes, *args: bytes) -> Awaitable[Reply]: ...


class RedisPresence:
    def __init__(self, *, names: Names, name: bytes, send: Send, run_script: RunScript) -> None:
        self._names = names
        self._name = name  # this process's, in the processes zset
        self._send = send
        self._run_script = run_script

    def add(self, channel: str, client: str, user: str | None, ttl_s: float) -> None:
        clients, processes = self._names.presence_keys(channel)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        send, name = self._send, self._name
        send(b"HSET", clients, client.encode(), name + b"\n" + (user or "").encode())
        send(b"ZADD", processes, b"%.3f" % (time.time() + ttl_s), name)
        send(b"PEXPIRE", clients, ttl_ms)
        send(b"PEXPIRE", processes, ttl_ms)

    def remove(self, channel: str, client: str) -> None:
        clients, _ = self._names.presence_keys(channel)
        self._send(b"HDEL", clients, client.encode())

    def heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        expires = b"%.3f" % (time.time() + ttl_s)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        send, name = self._send, self._name
        for channel in channels:
            clients, processes = self._names.presence_keys(channel)
            send(b"ZADD", processes, expires, name)
            send(b"PEXPIRE", clients, ttl_ms)
            send(b"PEXPIRE", processes, ttl_ms)

    async def read(self, channel: str) -> list[tuple[str, str | None]]:
        clients, processes = self._names.presence_keys(channel)
        reply = await self._run_script(
            f"the presence of {channel}",
            PRESENCE_SCRIPT,
            b"2",
            clients,
            processes,
            b"%.3f" % time.time(),
        )
        members = []
        for i in range(0, len(reply), 2):
            user = reply[i + 1].partition(b"\n")[2].decode()
            members.append((reply[i].decode(), user or None))
        return members
